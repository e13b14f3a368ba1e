//! Ticket type handlers. Writes lock the event row and bump its version (the booking writer's
//! rule for every write behind its back), so no decision made on the old types can commit.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde::Deserialize;

use crate::db::schema::events;
use crate::error::{ApiError, ApiResult};
use crate::events::domain::{Check, MAX_PRICE, nullable};
use crate::events::model::Event;
use crate::http::auth::AuthUser;
use crate::http::extract::ApiJson;
use crate::http::response;
use crate::state::AppState;
use crate::tickets::model::{self, TicketTypeFields, TicketTypeRow};

/// `POST` and `PATCH` body: absent = unchanged (or unset on create); `null` clears a limit.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TypeBody {
    /// Name.
    pub name: Option<String>,
    /// Price, minor units.
    pub price: Option<i64>,
    /// Seats of this type at most (`null`: no quota).
    #[serde(default, deserialize_with = "nullable")]
    pub quota: Option<Option<i64>>,
    /// Seats of this type one buyer may hold.
    #[serde(default, deserialize_with = "nullable")]
    pub max_per_user: Option<Option<i64>>,
    /// On sale from, RFC 3339.
    #[serde(default, deserialize_with = "nullable")]
    pub sales_start: Option<Option<String>>,
    /// On sale until, RFC 3339.
    #[serde(default, deserialize_with = "nullable")]
    pub sales_end: Option<Option<String>>,
    /// Not shown to buyers.
    pub hidden: Option<bool>,
}

/// Checks a body; `create` requires a name and a price.
fn validate(body: &TypeBody, create: bool, max_capacity: i64) -> ApiResult<TicketTypeFields> {
    let mut c = Check::default();
    let limit = |c: &mut Check, field: &str, v: Option<Option<i64>>| match v {
        None => None,
        Some(None) => Some(None),
        Some(v) => Some(c.int(field, v, 1, max_capacity, false).map(as_i32)),
    };
    let quota = limit(&mut c, "quota", body.quota);
    let max_per_user = limit(&mut c, "maxPerUser", body.max_per_user);
    let time = |c: &mut Check, field: &str, v: &Option<Option<String>>| match v {
        None => None,
        Some(None) => Some(None),
        Some(Some(raw)) => Some(c.time(field, Some(raw), false)),
    };
    let sales_start = time(&mut c, "salesStart", &body.sales_start);
    let sales_end = time(&mut c, "salesEnd", &body.sales_end);
    let fields = TicketTypeFields {
        event_id: None,
        name: c.line("name", body.name.as_deref(), 100, create),
        price: c.int("price", body.price, 0, MAX_PRICE, create),
        quota,
        max_per_user,
        sales_start,
        sales_end,
        hidden: body.hidden,
    };
    if let (Some(Some(s)), Some(Some(e))) = (fields.sales_start, fields.sales_end)
        && e <= s
    {
        c.fail("salesEnd", "must be after salesStart");
    }
    if fields.is_empty() && !create {
        c.fail("body", "no fields to update");
    }
    c.finish()?;
    Ok(fields)
}

fn as_i32(v: i64) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

fn ids(path: &(String, String)) -> ApiResult<(i64, i64)> {
    let event = crate::events::routes::path_id(&path.0)?;
    let id = path
        .1
        .parse::<i64>()
        .ok()
        .filter(|i| *i > 0)
        .ok_or_else(|| ApiError::field("typeId", "must be a positive integer"))?;
    Ok((event, id))
}

/// Locks the event for a write by `caller` (its host or an admin), refusing cancelled events.
async fn lock_managed(
    conn: &mut AsyncPgConnection,
    caller: &AuthUser,
    event_id: i64,
) -> ApiResult<Event> {
    let event = Event::lock(conn, event_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no event with id {event_id}")))?;
    if !caller.manages(conn, event.host_id).await? {
        return Err(ApiError::Forbidden(
            "only the event's host or an admin may change its ticket types".to_owned(),
        ));
    }
    if event.is_cancelled() {
        return Err(ApiError::Conflict {
            code: "event_cancelled",
            message: "the event is cancelled and can no longer be changed".to_owned(),
        });
    }
    Ok(event)
}

/// Bumps the event's version (the writer reloads its types) and refreshes the cache.
async fn touch(conn: &mut AsyncPgConnection, event_id: i64) -> QueryResult<Event> {
    diesel::update(events::table.find(event_id))
        .set(events::version.eq(events::version + 1))
        .returning(Event::as_returning())
        .get_result(conn)
        .await
}

/// `GET /api/events/{id}/ticket-types`: the types on sale; the event's host and admins also
/// see hidden ones.
pub async fn list(
    state: web::Data<AppState>,
    caller: Option<AuthUser>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let event_id = crate::events::routes::path_id(&path)?;
    let event = crate::events::service::lookup(&state, event_id).await?;
    let mut conn = state.db().get().await?;
    let manager = match caller {
        Some(c) => c.manages(&mut conn, event.host_id).await?,
        None => false,
    };
    if event.is_cancelled() && !manager {
        return Err(ApiError::NotFound(format!("no event with id {event_id}")));
    }
    let types: Vec<serde_json::Value> = model::of_event(&mut conn, event_id)
        .await?
        .iter()
        .filter(|t| manager || !t.hidden)
        .map(TicketTypeRow::view)
        .collect();
    Ok(response::ok(
        serde_json::json!({ "eventId": event_id, "ticketTypes": types }),
        "Ticket types",
    ))
}

/// `POST /api/events/{id}/ticket-types` (the event's host or an admin) → 201.
pub async fn create(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<String>,
    body: ApiJson<TypeBody>,
) -> ApiResult<HttpResponse> {
    let event_id = crate::events::routes::path_id(&path)?;
    let row = add(&state, &caller, event_id, &body.into_inner()).await?;
    Ok(response::created(row.view(), "Ticket type created"))
}

/// Adds a ticket type to an event the caller manages (the API's create and the host's
/// dashboard both come here).
pub async fn add(
    state: &AppState,
    caller: &AuthUser,
    event_id: i64,
    body: &TypeBody,
) -> ApiResult<model::TicketTypeRow> {
    let max = i64::from(state.settings().events.max_capacity);
    let mut fields = validate(body, true, max)?;
    fields.event_id = Some(event_id);
    let mut conn = state.db().get().await?;
    let (row, event) = conn
        .transaction(async |conn| {
            lock_managed(conn, caller, event_id).await?;
            let row = model::insert(conn, &fields).await?;
            let event = touch(conn, event_id).await?;
            Ok::<_, ApiError>((row, event))
        })
        .await?;
    state.event_cache().put(&event).await;
    tracing::info!(
        event.id = event_id,
        ticket_type.id = row.id,
        "ticket type created"
    );
    Ok(row)
}

/// `PATCH /api/events/{id}/ticket-types/{typeId}`: change a type. A quota cannot go below the
/// seats sold (409); the default type's price is the event's price (changed with it), and it
/// cannot be hidden.
pub async fn update(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<(String, String)>,
    body: ApiJson<TypeBody>,
) -> ApiResult<HttpResponse> {
    let (event_id, id) = ids(&path)?;
    let row = change(&state, &caller, event_id, id, &body.into_inner()).await?;
    Ok(response::ok(row.view(), "Ticket type updated"))
}

/// Changes ticket type `id` of an event the caller manages (a quota not below the seats sold,
/// the default type's price moving with the event's, the default type never hidden). The API's
/// `PATCH` and the host's dashboard both come here.
pub async fn change(
    state: &AppState,
    caller: &AuthUser,
    event_id: i64,
    id: i64,
    body: &TypeBody,
) -> ApiResult<model::TicketTypeRow> {
    let max = i64::from(state.settings().events.max_capacity);
    let fields = validate(body, false, max)?;
    let mut conn = state.db().get().await?;
    let (row, event) = conn
        .transaction(async |conn| {
            lock_managed(conn, caller, event_id).await?;
            let current = model::find(conn, event_id, id).await?.ok_or_else(|| {
                ApiError::NotFound(format!("no ticket type {id} for event {event_id}"))
            })?;
            check_update(&current, &fields, Utc::now())?;
            // The default type's price is the event's: change the event, the database follows.
            let mut fields = fields;
            if current.is_default
                && let Some(price) = fields.price.take()
            {
                diesel::update(events::table.find(event_id))
                    .set(events::price.eq(price))
                    .execute(conn)
                    .await?;
            }
            let row = if !fields.is_empty() {
                model::update(conn, id, &fields).await?
            } else {
                // Only the default type's price, moved with the event by the database.
                model::find(conn, event_id, id)
                    .await?
                    .ok_or_else(|| ApiError::NotFound(format!("no ticket type {id}")))?
            };
            let event = touch(conn, event_id).await?;
            Ok::<_, ApiError>((row, event))
        })
        .await?;
    state.event_cache().put(&event).await;
    tracing::info!(
        event.id = event_id,
        ticket_type.id = id,
        "ticket type updated"
    );
    Ok(row)
}

fn check_update(
    current: &TicketTypeRow,
    fields: &TicketTypeFields,
    _now: DateTime<Utc>,
) -> ApiResult<()> {
    if let Some(Some(q)) = fields.quota
        && q < current.sold
    {
        return Err(ApiError::Conflict {
            code: "quota_below_sold",
            message: format!(
                "quota {q} is below the {} seats of this type sold",
                current.sold
            ),
        });
    }
    if current.is_default && fields.hidden == Some(true) {
        return Err(ApiError::Conflict {
            code: "default_ticket_type",
            message:
                "the default ticket type cannot be hidden (bookings without ticketTypeId buy it)"
                    .to_owned(),
        });
    }
    let start = fields.sales_start.unwrap_or(current.sales_start);
    let end = fields.sales_end.unwrap_or(current.sales_end);
    if let (Some(s), Some(e)) = (start, end)
        && e <= s
    {
        return Err(ApiError::field("salesEnd", "must be after salesStart"));
    }
    Ok(())
}

/// `DELETE /api/events/{id}/ticket-types/{typeId}`: removes a type nobody bought. A type with
/// sales is hidden instead (409 says so); the default type stays.
pub async fn delete(
    state: web::Data<AppState>,
    caller: AuthUser,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (event_id, id) = ids(&path)?;
    let mut conn = state.db().get().await?;
    let event = conn
        .transaction(async |conn| {
            lock_managed(conn, &caller, event_id).await?;
            let current = model::find(conn, event_id, id).await?.ok_or_else(|| {
                ApiError::NotFound(format!("no ticket type {id} for event {event_id}"))
            })?;
            if current.is_default {
                return Err(ApiError::Conflict {
                    code: "default_ticket_type",
                    message: "the default ticket type cannot be deleted".to_owned(),
                });
            }
            if current.sold > 0 || model::has_sales(conn, id).await? {
                return Err(ApiError::Conflict {
                    code: "ticket_type_has_sales",
                    message:
                        "this ticket type has sales; hide it instead (PATCH {\"hidden\": true})"
                            .to_owned(),
                });
            }
            model::delete(conn, id).await?;
            Ok::<_, ApiError>(touch(conn, event_id).await?)
        })
        .await?;
    state.event_cache().put(&event).await;
    tracing::info!(
        event.id = event_id,
        ticket_type.id = id,
        "ticket type deleted"
    );
    Ok(response::ok(
        serde_json::json!({ "id": id, "eventId": event_id, "deleted": true }),
        "Ticket type deleted",
    ))
}
