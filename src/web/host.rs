//! The host's pages: their events, a new event, an event's sales dashboard (the numbers of
//! `GET /api/events/{id}/stats`, seats sold over time and holds as charts), its attendees (on
//! the page and as CSV), recording a manual payment, and cancelling the event after saying what
//! that does. Admins see every event's pages.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use minijinja::Value;

use super::charts;
use super::forms::{Form, id_in_path, posted, problem, render, see_other, with_role};
use super::render::Pages;
use super::session::describe;
use crate::error::ApiError;
use crate::events::domain::CreateEventBody;
use crate::events::model::{Event, ListFilter};
use crate::http::auth::AuthUser;
use crate::state::AppState;
use crate::users::domain::Role;

/// A host or an admin, or the page that says why not.
pub(super) fn publisher(
    req: &HttpRequest,
    state: &AppState,
    viewer: Option<AuthUser>,
    back: &str,
) -> Result<AuthUser, Box<HttpResponse>> {
    with_role(
        req,
        state,
        viewer,
        back,
        &[Role::Host, Role::Admin],
        "host_only",
    )
}

pub(super) fn failure(
    req: &HttpRequest,
    state: &AppState,
    user: &AuthUser,
    e: &ApiError,
) -> HttpResponse {
    problem(req, state, user, e, ("/host", "nav_host"))
}

/// `GET /host`: the viewer's events (an admin: every event), cancelled ones included.
pub async fn events(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Option<AuthUser>,
) -> HttpResponse {
    let user = match publisher(&req, &state, viewer, "/host") {
        Ok(u) => u,
        Err(resp) => return *resp,
    };
    let listed = async {
        let mut conn = state.db().get().await?;
        // The scope is the stored role's, not the token's: a demoted admin sees their own
        // events only, a demoted host none of this page.
        let role = Role::parse(&user.load(&mut conn).await?.role).unwrap_or(Role::Guest);
        if !matches!(role, Role::Host | Role::Admin) {
            return Err(ApiError::Forbidden(
                "this page needs the role host or admin".to_owned(),
            ));
        }
        let filter = ListFilter {
            host_id: (role != Role::Admin).then_some(user.id),
            include_cancelled: true,
            ..ListFilter::default()
        };
        Ok::<_, ApiError>(Event::list(&mut conn, &filter, None, 200, Utc::now()).await?)
    }
    .await;
    match listed {
        Ok(list) => {
            let now = Utc::now();
            let views: Vec<_> = list.iter().map(|e| e.view(now)).collect();
            render(
                &req,
                &state,
                Some(&user),
                StatusCode::OK,
                "host_events.html",
                minijinja::context! { page => "host", events => views },
            )
        }
        Err(e) => failure(&req, &state, &user, &e),
    }
}

/// `GET /host/events/new`: the form.
pub async fn new_form(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Option<AuthUser>,
) -> HttpResponse {
    let user = match publisher(&req, &state, viewer, "/host/events/new") {
        Ok(u) => u,
        Err(resp) => return *resp,
    };
    event_form(
        &req,
        &state,
        &user,
        StatusCode::OK,
        &Form::empty(),
        &[],
        None,
    )
}

/// The event form: a new event (`editing` none) or changes to event `editing`.
fn event_form(
    req: &HttpRequest,
    state: &AppState,
    user: &AuthUser,
    status: StatusCode,
    form: &Form,
    errors: &[(String, String)],
    editing: Option<i64>,
) -> HttpResponse {
    let value = |k: &str| form.get(k).unwrap_or_default().to_owned();
    let fields: HashMap<&str, String> = [
        "name",
        "description",
        "venue",
        "startsAt",
        "endsAt",
        "capacity",
        "price",
        "maxPerUser",
        "onSaleAt",
        "holdMinutes",
        "refundUntilHours",
    ]
    .into_iter()
    .map(|k| (k, value(k)))
    .collect();
    render(
        req,
        state,
        Some(user),
        status,
        "host_new.html",
        minijinja::context! {
            page => "host",
            f => fields,
            checkout => form.get("checkout").unwrap_or("instant"),
            provider => form.get("paymentProvider").unwrap_or("manual"),
            waiting_room => form.get("waitingRoom").is_some(),
            editing => editing,
            errors => errors.iter().map(|(f, m)| minijinja::context! { field => f, message => m }).collect::<Vec<_>>(),
            invalid => errors.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>(),
        },
    )
}

/// `POST /host/events/new`: the API's validation and creation; on to the new event's dashboard.
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Option<AuthUser>,
    body: web::Bytes,
) -> HttpResponse {
    let (form, user) = match posted(&req, &state, &body, viewer, "/host/events/new") {
        Ok(p) => p,
        Err(resp) => return *resp,
    };
    let mut errors = Vec::new();
    let f = EventFields::read(&form, &mut errors);
    if !errors.is_empty() {
        return event_form(
            &req,
            &state,
            &user,
            StatusCode::BAD_REQUEST,
            &form,
            &errors,
            None,
        );
    }
    let body = CreateEventBody {
        name: f.name,
        description: f.description,
        starts_at: f.starts_at,
        ends_at: f.ends_at,
        venue: f.venue,
        capacity: f.capacity,
        price: f.price,
        max_per_user: f.max_per_user,
        waitlist_open: Some(form.get("waitlistClosed").is_none()),
        on_sale_at: f.on_sale_at,
        waiting_room: Some(f.waiting_room),
        checkout: f.checkout,
        hold_seconds: f.hold_seconds,
        payment_provider: f.payment_provider,
        refund_until_hours: f.refund_until_hours,
        host_id: None,
    };
    let created = async {
        user.require_publisher(&mut *state.db().get().await?)
            .await?;
        let new = crate::events::domain::validate_create(
            &body,
            user.id,
            crate::events::service::limits(&state),
            Utc::now(),
        )?;
        crate::events::service::create(&state, new).await
    }
    .await;
    match created {
        Ok(event) => see_other(&format!("/host/events/{}", event.id)),
        Err(e) => {
            let (status, errors) = refused(&e);
            event_form(&req, &state, &user, status, &form, &errors, None)
        }
    }
}

/// The event form's fields as the API takes them (times in UTC, money in minor units, minutes
/// as seconds); a field that is not even a number is named in `errors`.
struct EventFields {
    name: Option<String>,
    description: Option<String>,
    starts_at: Option<String>,
    ends_at: Option<String>,
    venue: Option<String>,
    capacity: Option<i64>,
    price: Option<i64>,
    max_per_user: Option<i64>,
    on_sale_at: Option<String>,
    waiting_room: bool,
    checkout: Option<String>,
    hold_seconds: Option<i64>,
    payment_provider: Option<String>,
    refund_until_hours: Option<Option<i64>>,
}

impl EventFields {
    fn read(form: &Form, errors: &mut Vec<(String, String)>) -> Self {
        let text = |k: &str| form.get(k).map(str::to_owned);
        Self {
            name: text("name"),
            description: text("description"),
            starts_at: form.utc("startsAt"),
            ends_at: form.utc("endsAt"),
            venue: text("venue"),
            capacity: form.whole("capacity", errors),
            price: form.money("price", errors),
            max_per_user: form.whole("maxPerUser", errors),
            on_sale_at: form.utc("onSaleAt"),
            waiting_room: form.get("waitingRoom").is_some(),
            checkout: text("checkout"),
            hold_seconds: form
                .whole("holdMinutes", errors)
                .map(|m| m.saturating_mul(60)),
            payment_provider: text("paymentProvider"),
            refund_until_hours: match form.get("refundUntilHours") {
                Some("never") => Some(None),
                Some(_) => Some(form.whole("refundUntilHours", errors)),
                None => None,
            },
        }
    }
}

/// What the event form shows for an error of the API: each refused field (the hold in
/// minutes, as the form asks it), else the error's words, with the API's status.
pub(super) fn refused(e: &ApiError) -> (StatusCode, Vec<(String, String)>) {
    match e {
        ApiError::Validation { errors, .. } => (
            StatusCode::BAD_REQUEST,
            errors
                .iter()
                .map(|e| {
                    let field = if e.field == "holdSeconds" {
                        "holdMinutes"
                    } else {
                        &e.field
                    };
                    (field.to_owned(), e.message.clone())
                })
                .collect(),
        ),
        other => (
            actix_web::ResponseError::error_response(other).status(),
            vec![("form".to_owned(), describe(other))],
        ),
    }
}

/// `GET /host/events/{id}`: the sales dashboard.
pub async fn dashboard(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Option<AuthUser>,
    path: web::Path<String>,
) -> HttpResponse {
    let user = match publisher(&req, &state, viewer, &format!("/host/events/{path}")) {
        Ok(u) => u,
        Err(resp) => return *resp,
    };
    let report = async {
        let id = id_in_path(&path)?;
        let stats =
            crate::analytics::event_report(&state, &user, id, crate::analytics::Window::default())
                .await?;
        let mut conn = state.db().get().await?;
        let series = crate::analytics::sales_series(&mut conn, id).await?;
        let attendees = crate::bookings::history::attendees(&mut conn, id).await?;
        let types: Vec<serde_json::Value> = crate::tickets::model::of_event(&mut conn, id)
            .await?
            .iter()
            .map(crate::tickets::model::TicketTypeRow::view)
            .collect();
        Ok::<_, ApiError>((id, stats, series, attendees, types))
    }
    .await;
    let (id, stats, series, attendees, types) = match report {
        Ok(r) => r,
        Err(e) => return failure(&req, &state, &user, &e),
    };
    let pages = Pages::get();
    let capacity = stats["event"]["capacity"].as_f64().unwrap_or(0.0);
    let start = series.first().map(|(t, _)| *t);
    let points: Vec<(f64, f64)> = series
        .iter()
        .map(|(t, n)| {
            (
                start.map_or(0.0, |s| (*t - s).num_seconds() as f64),
                *n as f64,
            )
        })
        .collect();
    let sold_chart = charts::running_total(&pages.text("chart_sold"), &points, capacity);
    let holds = &stats["checkout"]["holds"];
    let n = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0);
    let hold_chart = charts::bars(
        &pages.text("chart_holds"),
        &[
            (pages.text("holds.open"), n(&holds["open"])),
            (pages.text("holds.paid"), n(&holds["paid"])),
            (pages.text("holds.expired"), n(&holds["expired"])),
        ],
        0.0,
    );
    let stats = serde_json::Value::Object(stats);
    render(
        &req,
        &state,
        Some(&user),
        StatusCode::OK,
        "host_event.html",
        minijinja::context! {
            page => "host",
            id => id,
            s => stats,
            sold_chart => Value::from_safe_string(sold_chart),
            hold_chart => Value::from_safe_string(hold_chart),
            attendees => attendees,
            types => types,
            notice => notice(req.query_string()),
        },
    )
}

/// What `?done=` on the dashboard says.
fn notice(query: &str) -> Option<String> {
    let pages = Pages::get();
    if query.contains("done=paid") {
        Some(pages.text("done.marked_paid"))
    } else if query.contains("done=type_added") {
        Some(pages.text("done.type_added"))
    } else if query.contains("done=type_changed") {
        Some(pages.text("done.type_changed"))
    } else if query.contains("done=updated") {
        Some(pages.text("done.updated"))
    } else {
        None
    }
}

/// `GET /host/events/{id}/attendees.csv`: the attendee list as CSV (no email addresses).
pub async fn attendees_csv(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Option<AuthUser>,
    path: web::Path<String>,
) -> HttpResponse {
    let user = match publisher(&req, &state, viewer, "/host") {
        Ok(u) => u,
        Err(resp) => return *resp,
    };
    let rows = async {
        let id = id_in_path(&path)?;
        // The same check as the dashboard: its host or an admin.
        crate::analytics::event_report(&state, &user, id, crate::analytics::Window::default())
            .await?;
        let mut conn = state.db().get().await?;
        Ok::<_, ApiError>((
            id,
            crate::bookings::history::attendees(&mut conn, id).await?,
        ))
    }
    .await;
    match rows {
        Ok((id, rows)) => {
            let mut out = csv_row(&[
                "booking_id",
                "name",
                "username",
                "ticket_type",
                "seats",
                "status",
                "cost",
                "booked_at",
            ]);
            for a in rows {
                out.push_str(&csv_row(&[
                    &a.booking_id.to_string(),
                    &a.name,
                    &a.username,
                    a.ticket_type.as_deref().unwrap_or(""),
                    &a.seats.to_string(),
                    &a.status,
                    &crate::notifications::render::money(a.cost),
                    &a.booked_at.to_rfc3339(),
                ]));
            }
            HttpResponse::Ok()
                .content_type("text/csv; charset=utf-8")
                .insert_header((
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"event-{id}-attendees.csv\""),
                ))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .body(out)
        }
        Err(e) => failure(&req, &state, &user, &e),
    }
}

/// One CSV line: every cell quoted (RFC 4180), and a formula defused wherever a spreadsheet
/// could start one — at the cell's start and after any character some locale splits on (`,`
/// `;` tab `|` or a line break): `Bob;=1+1` is `Bob;'=1+1`. A cell that is a plain number
/// (`-12.50`) stays a number.
fn csv_row(cells: &[&str]) -> String {
    let quoted: Vec<String> = cells
        .iter()
        .map(|c| {
            let mut out = String::with_capacity(c.len() + 2);
            out.push('"');
            let number = c.parse::<f64>().is_ok();
            let mut cell_start = true;
            for ch in c.chars() {
                if cell_start && !number && matches!(ch, '=' | '+' | '-' | '@' | '\t' | '\r') {
                    out.push('\'');
                }
                cell_start = matches!(ch, ',' | ';' | '\t' | '|' | '\n' | '\r');
                if ch == '"' {
                    out.push('"');
                }
                out.push(ch);
            }
            out.push('"');
            out
        })
        .collect();
    format!("{}\r\n", quoted.join(","))
}

/// `POST /host/bookings/{id}/mark-paid` (`eventId`): records a manual payment (the API's
/// `mark-paid`), back to the dashboard.
pub async fn mark_paid(
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
    let back = form
        .get("eventId")
        .and_then(|e| e.parse::<i64>().ok())
        .unwrap_or(0);
    let done = async {
        let id = id_in_path(&path)?;
        crate::payments::routes::record_manual_payment(&state, &user, id, form.get("reference"))
            .await
    }
    .await;
    match done {
        Ok(_) => see_other(&format!("/host/events/{back}?done=paid")),
        Err(e) => failure(&req, &state, &user, &e),
    }
}

/// `GET /host/events/{id}/cancel`: what cancelling does, with the numbers, before doing it.
pub async fn cancel_form(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Option<AuthUser>,
    path: web::Path<String>,
) -> HttpResponse {
    let user = match publisher(&req, &state, viewer, "/host") {
        Ok(u) => u,
        Err(resp) => return *resp,
    };
    let report = async {
        let id = id_in_path(&path)?;
        crate::analytics::event_report(&state, &user, id, crate::analytics::Window::default()).await
    }
    .await;
    match report {
        Ok(stats) => render(
            &req,
            &state,
            Some(&user),
            StatusCode::OK,
            "host_cancel.html",
            minijinja::context! {
                page => "host",
                s => serde_json::Value::Object(stats),
            },
        ),
        Err(e) => failure(&req, &state, &user, &e),
    }
}

/// `POST /host/events/{id}/cancel`: cancels the event (the API's delete: bookings cancelled,
/// paid ones refunded, the waitlist cleared, everyone emailed).
pub async fn cancel(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Option<AuthUser>,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let (_, user) = match posted(&req, &state, &body, viewer, "/host") {
        Ok(p) => p,
        Err(resp) => return *resp,
    };
    let done = async {
        let id = id_in_path(&path)?;
        crate::events::service::delete(&state, &user, Some(id)).await
    }
    .await;
    match done {
        Ok((event, _)) => see_other(&format!("/host/events/{}", event.id)),
        Err(e) => failure(&req, &state, &user, &e),
    }
}

/// The form fields of an event as it is (times as `datetime-local` in UTC, the price as money).
fn fields_of(e: &Event) -> Form {
    let local = super::forms::local_time;
    let mut f: Vec<(String, String)> = vec![
        ("name".into(), e.name.clone()),
        ("description".into(), e.description.clone()),
        ("venue".into(), e.venue.clone()),
        ("startsAt".into(), local(e.starts_at)),
        ("endsAt".into(), local(e.ends_at)),
        ("capacity".into(), e.capacity.to_string()),
        ("price".into(), crate::notifications::render::money(e.price)),
        ("checkout".into(), e.checkout.clone()),
        ("paymentProvider".into(), e.payment_provider.clone()),
        (
            "refundUntilHours".into(),
            e.refund_until_hours
                .map_or_else(|| "never".to_owned(), |h| h.to_string()),
        ),
    ];
    if let Some(m) = e.max_per_user {
        f.push(("maxPerUser".into(), m.to_string()));
    }
    if let Some(t) = e.on_sale_at {
        f.push(("onSaleAt".into(), local(t)));
    }
    if e.checkout == "hold" {
        f.push(("holdMinutes".into(), (e.hold_secs / 60).to_string()));
    }
    if e.waiting_room {
        f.push(("waitingRoom".into(), "1".into()));
    }
    Form::from_pairs(f)
}

/// Event `id`, for a viewer who manages it (its host or an admin; 403 for anyone else).
pub(super) async fn managed_event(
    conn: &mut diesel_async::AsyncPgConnection,
    user: &AuthUser,
    id: i64,
) -> Result<Event, ApiError> {
    let event = Event::find(conn, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(String::new()))?;
    if !user.manages(conn, event.host_id).await? {
        return Err(ApiError::Forbidden(
            "only the event's host or an admin may change it".to_owned(),
        ));
    }
    Ok(event)
}

/// `GET /host/events/{id}/edit`: the event's form, filled in.
pub async fn edit_form(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Option<AuthUser>,
    path: web::Path<String>,
) -> HttpResponse {
    let user = match publisher(&req, &state, viewer, &format!("/host/events/{path}/edit")) {
        Ok(u) => u,
        Err(resp) => return *resp,
    };
    let found = async {
        let id = id_in_path(&path)?;
        managed_event(&mut *state.db().get().await?, &user, id).await
    }
    .await;
    match found {
        Ok(event) => event_form(
            &req,
            &state,
            &user,
            StatusCode::OK,
            &fields_of(&event),
            &[],
            Some(event.id),
        ),
        Err(e) => failure(&req, &state, &user, &e),
    }
}

/// `POST /host/events/{id}/edit`: the API's update (its checks: capacity not below the seats
/// taken, times in order…), back to the dashboard; refused fields named on the form.
pub async fn edit(
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
    let f = EventFields::read(&form, &mut errors);
    if !errors.is_empty() {
        return event_form(
            &req,
            &state,
            &user,
            StatusCode::BAD_REQUEST,
            &form,
            &errors,
            Some(id),
        );
    }
    let update = crate::events::domain::UpdateEventBody {
        id: Some(id),
        name: f.name,
        description: f.description,
        starts_at: f.starts_at,
        ends_at: f.ends_at,
        venue: f.venue,
        capacity: f.capacity,
        price: f.price,
        max_per_user: Some(f.max_per_user),
        waitlist_open: None,
        on_sale_at: Some(f.on_sale_at),
        waiting_room: Some(f.waiting_room),
        checkout: f.checkout,
        hold_seconds: f.hold_seconds,
        payment_provider: f.payment_provider,
        refund_until_hours: f.refund_until_hours,
    };
    match crate::events::service::update(&state, &user, update).await {
        Ok(_) => see_other(&format!("/host/events/{id}?done=updated")),
        Err(e) => {
            let (status, errors) = refused(&e);
            event_form(&req, &state, &user, status, &form, &errors, Some(id))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        assert_eq!(csv_row(&["1", "Ada", "x"]), "\"1\",\"Ada\",\"x\"\r\n");
        assert_eq!(
            csv_row(&["a,b", "say \"hi\""]),
            "\"a,b\",\"say \"\"hi\"\"\"\r\n"
        );
        assert_eq!(
            csv_row(&["=HYPERLINK(\"x\")"]),
            "\"'=HYPERLINK(\"\"x\"\")\"\r\n"
        );
        // A `;`-separated locale splits here: the part after the separator is defused too.
        assert_eq!(csv_row(&["Bob;=1+1"]), "\"Bob;'=1+1\"\r\n");
        assert_eq!(csv_row(&["a,+b|@c\t-d"]), "\"a,'+b|'@c\t'-d\"\r\n");
        assert_eq!(
            csv_row(&["-12.50"]),
            "\"-12.50\"\r\n",
            "a number stays a number"
        );
    }
}
