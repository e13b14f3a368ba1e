//! An event's ticket types on the host's pages: adding one (the form on the dashboard), changing
//! one (name, price, quota, per-buyer cap, sales window, hidden) and hiding or showing it. Every
//! change is the API's own (`tickets::routes::{add, change}`: its checks, its event lock and
//! version bump); a refused field is named on the type's form.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use super::forms::{Form, id_in_path, local_time, posted, render, see_other};
use super::host::{failure, managed_event, publisher, refused};
use crate::error::ApiError;
use crate::http::auth::AuthUser;
use crate::state::AppState;
use crate::tickets::model::{self as tickets, TicketTypeRow};
use crate::tickets::routes::TypeBody;

/// The fields of the type form.
const FIELDS: [&str; 7] = [
    "name",
    "price",
    "quota",
    "maxPerUser",
    "salesStart",
    "salesEnd",
    "hidden",
];

/// The type form as the API takes it: an empty limit or sales time clears it; a field that is
/// not even a number is named in `errors`. `visibility`: whether the form decides `hidden` (the
/// default type's form has no such box).
fn read(form: &Form, visibility: bool, errors: &mut Vec<(String, String)>) -> TypeBody {
    TypeBody {
        name: form.get("name").map(str::to_owned),
        price: form.money("price", errors),
        quota: Some(form.whole("quota", errors)),
        max_per_user: Some(form.whole("maxPerUser", errors)),
        sales_start: Some(form.utc("salesStart")),
        sales_end: Some(form.utc("salesEnd")),
        hidden: visibility.then(|| form.get("hidden").is_some()),
    }
}

/// A type as its form shows it.
fn fields_of(t: &TicketTypeRow) -> Form {
    let mut f = vec![
        ("name".to_owned(), t.name.clone()),
        (
            "price".to_owned(),
            crate::notifications::render::money(t.price),
        ),
    ];
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            f.push((k.to_owned(), v));
        }
    };
    put("quota", t.quota.map(|q| q.to_string()));
    put("maxPerUser", t.max_per_user.map(|q| q.to_string()));
    put("salesStart", t.sales_start.map(local_time));
    put("salesEnd", t.sales_end.map(local_time));
    put("hidden", t.hidden.then(|| "1".to_owned()));
    Form::from_pairs(f)
}

/// The type form: a new type (`editing` none) or changes to `editing`.
fn type_form(
    req: &HttpRequest,
    state: &AppState,
    user: &AuthUser,
    (status, event_id): (StatusCode, i64),
    form: &Form,
    errors: &[(String, String)],
    editing: Option<&TicketTypeRow>,
) -> HttpResponse {
    let values: HashMap<&str, &str> = FIELDS
        .into_iter()
        .map(|k| (k, form.get(k).unwrap_or_default()))
        .collect();
    render(
        req,
        state,
        Some(user),
        status,
        "host_type.html",
        minijinja::context! {
            page => "host",
            event_id => event_id,
            f => values,
            editing => editing.map(|t| t.id),
            is_default => editing.is_some_and(|t| t.is_default),
            sold => editing.map(|t| t.sold),
            errors => errors.iter().map(|(f, m)| minijinja::context! { field => f, message => m }).collect::<Vec<_>>(),
            invalid => errors.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>(),
        },
    )
}

/// The event id and the type of a path `/host/events/{id}/ticket-types/{type}`, for a viewer
/// who manages the event.
async fn type_in_path(
    state: &AppState,
    user: &AuthUser,
    path: &(String, String),
) -> Result<(i64, TicketTypeRow), ApiError> {
    let (event_id, type_id) = (id_in_path(&path.0)?, id_in_path(&path.1)?);
    let mut conn = state.db().get().await?;
    managed_event(&mut conn, user, event_id).await?;
    let found = tickets::find(&mut conn, event_id, type_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(String::new()))?;
    Ok((event_id, found))
}

/// `POST /host/events/{id}/ticket-types`: adds a type, back to the dashboard; refused, the
/// type's form again with each refused field named.
pub async fn add(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Option<AuthUser>,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let (form, user) = match posted(&req, &state, &body, viewer, "/host") {
        Ok(p) => p,
        Err(resp) => return *resp,
    };
    let Ok(id) = id_in_path(&path) else {
        return failure(&req, &state, &user, &ApiError::NotFound(String::new()));
    };
    let mut errors = Vec::new();
    let body = read(&form, true, &mut errors);
    if !errors.is_empty() {
        let at = (StatusCode::BAD_REQUEST, id);
        return type_form(&req, &state, &user, at, &form, &errors, None);
    }
    match crate::tickets::routes::add(&state, &user, id, &body).await {
        Ok(_) => see_other(&format!("/host/events/{id}?done=type_added")),
        Err(e) => refusal(&req, &state, &user, (id, &form), &e, None),
    }
}

/// The API's refusal of a type form: a missing event or type, or a viewer who may not change
/// it, as a page saying so; anything else as the form again, each refused field named.
fn refusal(
    req: &HttpRequest,
    state: &AppState,
    user: &AuthUser,
    (event_id, form): (i64, &Form),
    e: &ApiError,
    editing: Option<&TicketTypeRow>,
) -> HttpResponse {
    if matches!(e, ApiError::NotFound(_) | ApiError::Forbidden(_)) {
        return failure(req, state, user, e);
    }
    let (status, mut errors) = refused(e);
    // The conflicts that are about one field are shown at that field.
    if let ApiError::Conflict { code, .. } = e
        && let Some(field) = match *code {
            "quota_below_sold" => Some("quota"),
            "default_ticket_type" => Some("hidden"),
            _ => None,
        }
    {
        for (f, _) in &mut errors {
            *f = field.to_owned();
        }
    }
    type_form(req, state, user, (status, event_id), form, &errors, editing)
}

/// `GET /host/events/{id}/ticket-types/{type}`: the type's form, filled in.
pub async fn edit_form(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Option<AuthUser>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let back = format!("/host/events/{}/ticket-types/{}", path.0, path.1);
    let user = match publisher(&req, &state, viewer, &back) {
        Ok(u) => u,
        Err(resp) => return *resp,
    };
    match type_in_path(&state, &user, &path).await {
        Ok((event_id, t)) => type_form(
            &req,
            &state,
            &user,
            (StatusCode::OK, event_id),
            &fields_of(&t),
            &[],
            Some(&t),
        ),
        Err(e) => failure(&req, &state, &user, &e),
    }
}

/// `POST /host/events/{id}/ticket-types/{type}`: the API's change (a quota not below the seats
/// sold, the sales window in order, the default type never hidden and priced as the event),
/// back to the dashboard; refused, the form again naming the field.
pub async fn edit(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Option<AuthUser>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let (form, user) = match posted(&req, &state, &body, viewer, "/host") {
        Ok(p) => p,
        Err(resp) => return *resp,
    };
    let (event_id, current) = match type_in_path(&state, &user, &path).await {
        Ok(found) => found,
        Err(e) => return failure(&req, &state, &user, &e),
    };
    let mut errors = Vec::new();
    let body = read(&form, !current.is_default, &mut errors);
    if !errors.is_empty() {
        let at = (StatusCode::BAD_REQUEST, event_id);
        return type_form(&req, &state, &user, at, &form, &errors, Some(&current));
    }
    match crate::tickets::routes::change(&state, &user, event_id, current.id, &body).await {
        Ok(_) => see_other(&format!("/host/events/{event_id}?done=type_changed")),
        Err(e) => refusal(&req, &state, &user, (event_id, &form), &e, Some(&current)),
    }
}

/// `POST /host/events/{id}/ticket-types/{type}/visibility` (`hidden` = 1 or 0): hides a type
/// from buyers or shows it again (the API's rules: the default type stays visible).
pub async fn visibility(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Option<AuthUser>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let (form, user) = match posted(&req, &state, &body, viewer, "/host") {
        Ok(p) => p,
        Err(resp) => return *resp,
    };
    let done = async {
        let (event_id, type_id) = (id_in_path(&path.0)?, id_in_path(&path.1)?);
        let body = TypeBody {
            name: None,
            price: None,
            quota: None,
            max_per_user: None,
            sales_start: None,
            sales_end: None,
            hidden: Some(form.get("hidden") == Some("1")),
        };
        crate::tickets::routes::change(&state, &user, event_id, type_id, &body).await?;
        Ok::<_, ApiError>(event_id)
    }
    .await;
    match done {
        Ok(id) => see_other(&format!("/host/events/{id}?done=type_changed")),
        Err(e) => failure(&req, &state, &user, &e),
    }
}
