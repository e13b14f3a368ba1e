//! The API contract: an OpenAPI 3.1 document built from one table of operations below, served
//! at `GET /api/openapi.json`, and a reference page at `GET /api/docs` that renders it in the
//! browser with a script served by this binary (nothing is fetched from elsewhere, at build
//! time or at view time).
//!
//! Every route registered through [`crate::http::resource`] is recorded; the test suite probes
//! each recorded path with every method and fails when a route answers that this document does
//! not describe (or describes one that does not exist). Error answers share one schema and
//! one set of codes per kind of route; the schemathesis run (`scripts/fuzz`) checks that every
//! response of the running API conforms to this document.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde_json::{Map, Value, json};

/// `{ "$ref": "#/components/schemas/<name>" }`.
fn r(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn nullable(t: &str) -> Value {
    json!({ "type": [t, "null"] })
}

fn int(min: i64, max: Option<i64>) -> Value {
    match max {
        Some(m) => json!({ "type": "integer", "minimum": min, "maximum": m }),
        None => json!({ "type": "integer", "minimum": min }),
    }
}

fn obj(required: &[&str], props: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": props })
}

fn string(min: usize, max: usize) -> Value {
    json!({ "type": "string", "minLength": min, "maxLength": max })
}

const DATE_TIME: &str = "date-time";

fn date_time() -> Value {
    json!({ "type": "string", "format": DATE_TIME })
}

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// Anyone.
    Public,
    /// Anyone; a token adds detail.
    Optional,
    /// Any signed-in user.
    User,
    /// Some roles only (403 for the others).
    Role,
}

/// One operation of the table.
struct Op {
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    description: &'static str,
    auth: Auth,
    params: Vec<Value>,
    body: Option<Value>,
    body_required: bool,
    ok: Vec<(u16, Value)>,
    errors: Vec<u16>,
    raw: Option<(&'static str, Value)>,
}

impl Op {
    fn new(method: &'static str, path: &'static str, tag: &'static str) -> Self {
        Self {
            method,
            path,
            tag,
            summary: "",
            description: "",
            auth: Auth::Public,
            params: Vec::new(),
            body: None,
            body_required: true,
            ok: Vec::new(),
            errors: Vec::new(),
            raw: None,
        }
    }

    fn doc(mut self, summary: &'static str, description: &'static str) -> Self {
        self.summary = summary;
        self.description = description;
        self
    }

    fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    fn query(mut self, name: &str, schema: Value, description: &str) -> Self {
        self.params.push(json!({
            "name": name, "in": "query", "required": false, "schema": schema,
            "description": description,
        }));
        self
    }

    fn path_param(mut self, name: &str, schema: Value) -> Self {
        self.params
            .push(json!({ "name": name, "in": "path", "required": true, "schema": schema }));
        self
    }

    fn header(mut self, name: &str, schema: Value, description: &str) -> Self {
        self.params.push(json!({
            "name": name, "in": "header", "required": false, "schema": schema,
            "description": description,
        }));
        self
    }

    fn body(mut self, schema: Value) -> Self {
        self.body = Some(schema);
        self
    }

    /// A body that may be left out.
    fn optional_body(mut self, schema: Value) -> Self {
        self.body = Some(schema);
        self.body_required = false;
        self
    }

    fn ok(mut self, status: u16, data: Value) -> Self {
        self.ok.push((status, data));
        self
    }

    fn errors(mut self, codes: &[u16]) -> Self {
        self.errors.extend_from_slice(codes);
        self
    }

    /// A success answer that is not the envelope.
    fn raw(mut self, content_type: &'static str, schema: Value) -> Self {
        self.raw = Some((content_type, schema));
        self
    }

    fn render(&self) -> Value {
        let mut responses = Map::new();
        for (status, data) in &self.ok {
            responses.insert(
                status.to_string(),
                json!({
                    "description": "Success (the envelope; `data` is the payload)",
                    "content": { "application/json": { "schema": {
                        "type": "object",
                        "required": ["statusCode", "data", "message"],
                        "properties": {
                            "statusCode": { "const": status },
                            "data": data,
                            "message": { "type": "string" },
                        },
                    } } },
                }),
            );
        }
        if let Some((content_type, schema)) = &self.raw {
            responses.insert(
                "200".into(),
                json!({ "description": "Success", "content": { *content_type: { "schema": schema } } }),
            );
        }
        // Every operation: bad query/path (400), slow client (408), limits (414, 431),
        // rate limits (429), bugs (500) and unavailable dependencies or deadlines (503).
        let mut codes = vec![400, 408, 414, 429, 431, 500, 503];
        if self.body.is_some() {
            codes.extend([413, 415]);
        }
        match self.auth {
            Auth::User => codes.push(401),
            Auth::Role => codes.extend([401, 403]),
            Auth::Optional => codes.push(401),
            Auth::Public => {}
        }
        codes.extend(&self.errors);
        codes.sort_unstable();
        codes.dedup();
        for code in codes {
            if responses.contains_key(&code.to_string()) {
                continue;
            }
            responses.insert(
                code.to_string(),
                json!({ "$ref": format!("#/components/responses/E{code}") }),
            );
        }
        let mut op = json!({
            "tags": [self.tag],
            "summary": self.summary,
            "description": self.description,
            "operationId": format!("{} {}", self.method, self.path),
            "parameters": self.params,
            "responses": responses,
        });
        let security = match self.auth {
            Auth::Public => None,
            Auth::Optional => Some(json!([{}, { "bearerAuth": [] }, { "cookieAuth": [] }])),
            Auth::User | Auth::Role => Some(json!([{ "bearerAuth": [] }, { "cookieAuth": [] }])),
        };
        if let Some(s) = security {
            op["security"] = s;
        }
        if let Some(body) = &self.body {
            op["requestBody"] = json!({
                "required": self.body_required,
                "content": { "application/json": { "schema": body } },
            });
        }
        op
    }
}

fn error_responses() -> Value {
    let texts = [
        (
            400,
            "Malformed JSON, a wrong field or parameter (named in `errors`)",
        ),
        (401, "Missing, invalid or expired token"),
        (403, "The caller's role may not do this"),
        (404, "No such resource"),
        (405, "Method not allowed on this route"),
        (408, "The request (head or body) was not received in time"),
        (409, "Conflict with the current state (`code` says which)"),
        (413, "Request body over `http.body_limit_bytes`"),
        (414, "Request target over `http.max_uri_bytes`"),
        (415, "Content-Type is not JSON"),
        (422, "Idempotency-Key reused with another body"),
        (429, "Rate limited (`Retry-After`)"),
        (431, "Request headers over `http.max_header_bytes`"),
        (500, "A bug; details only in the server log"),
        (
            503,
            "A dependency is down, the queue is full or the deadline passed (`Retry-After`)",
        ),
    ];
    let mut out = Map::new();
    for (code, text) in texts {
        out.insert(
            format!("E{code}"),
            json!({
                "description": text,
                "content": { "application/json": { "schema": r("Error") } },
            }),
        );
    }
    Value::Object(out)
}

fn schemas() -> Value {
    let event_status = json!({ "type": "string", "enum": ["not_on_sale", "on_sale", "sold_out", "started", "ended", "cancelled"] });
    let page_info = obj(
        &["hasMore", "nextCursor"],
        json!({ "hasMore": { "type": "boolean" }, "nextCursor": nullable("string") }),
    );
    let counts = obj(
        &["bookings", "seats"],
        json!({ "bookings": int(0, None), "seats": int(0, None) }),
    );
    let flows = json!({
        "totalBookings": r("Counts"),
        "cancellations": r("Counts"),
        "revenue": { "type": "integer", "minimum": 0, "description": "Cost of confirmed bookings (paid, free or instant)" },
        "checkout": obj(&["holds", "payments"], json!({
            "holds": obj(&["open", "expired", "paid", "conversionPercent"], json!({
                "open": int(0, None), "expired": int(0, None), "paid": int(0, None),
                "conversionPercent": { "type": "number", "description": "paid / (paid + expired)" },
            })),
            "payments": obj(&["captured", "refunded", "refunds", "net"], json!({
                "captured": int(0, None), "refunded": int(0, None), "refunds": int(0, None),
                "net": { "type": "integer", "description": "captured − refunded, from the ledger" },
            })),
        })),
        "waitlist": obj(&["entries", "seats", "events"], json!({
            "entries": int(0, None), "seats": int(0, None), "events": int(0, None),
        })),
        "requestsByOutcome": obj(
            &["confirmed", "partial", "waitlisted", "rejected", "total", "seatsRequested"],
            json!({
                "confirmed": int(0, None), "partial": int(0, None), "waitlisted": int(0, None),
                "rejected": int(0, None), "total": int(0, None), "seatsRequested": int(0, None),
            }),
        ),
        "rejectionsByReason": { "type": "object", "additionalProperties": int(0, None) },
        "window": obj(&["from", "to"], json!({ "from": nullable("string"), "to": nullable("string") })),
    });
    let flow_keys = [
        "totalBookings",
        "cancellations",
        "revenue",
        "checkout",
        "waitlist",
        "requestsByOutcome",
        "rejectionsByReason",
        "window",
    ];
    let mut analytics_props = flows.as_object().cloned().unwrap_or_default();
    analytics_props.extend(
        json!({
            "overallCapacity": obj(
                &["totalReserved", "totalCapacity", "utilizationPercent", "events"],
                json!({
                    "totalReserved": int(0, None), "totalCapacity": int(0, None),
                    "utilizationPercent": { "type": "number", "minimum": 0, "maximum": 100 },
                    "events": int(0, None),
                }),
            ),
            "mostPopularEvents": { "type": "array", "items": obj(
                &["id", "name", "hostId", "confirmedSeats", "capacity", "utilizationPercent"],
                json!({
                    "id": int(1, None), "name": { "type": "string" }, "hostId": int(1, None),
                    "confirmedSeats": int(0, None), "capacity": int(1, None),
                    "utilizationPercent": { "type": "number" },
                }),
            ) },
            "perEventUtilization": { "type": "array", "items": obj(
                &["id", "name", "hostId", "status", "startsAt", "reservedSeats", "capacity",
                  "confirmedSeats", "utilizationPercent", "waitlistSeats"],
                json!({
                    "id": int(1, None), "name": { "type": "string" }, "hostId": int(1, None),
                    "status": { "type": "string", "enum": ["not_on_sale", "on_sale", "sold_out", "started", "ended", "cancelled"] },
                    "startsAt": date_time(), "reservedSeats": int(0, None),
                    "capacity": int(1, None), "confirmedSeats": int(0, None),
                    "utilizationPercent": { "type": "number" }, "waitlistSeats": int(0, None),
                }),
            ) },
            "perEventPageInfo": r("PageInfo"),
            "hostId": nullable("integer"),
        })
        .as_object()
        .cloned()
        .unwrap_or_default(),
    );
    let mut analytics_required: Vec<&str> = flow_keys.to_vec();
    analytics_required.extend([
        "overallCapacity",
        "mostPopularEvents",
        "perEventUtilization",
        "perEventPageInfo",
        "hostId",
    ]);
    let mut stats_props = flows.as_object().cloned().unwrap_or_default();
    stats_props.insert(
        "queue".into(),
        json!({ "$ref": "#/components/schemas/QueueFacts", "description": "Events with a waiting room" }),
    );
    stats_props.insert(
        "event".into(),
        obj(
            &[
                "id",
                "name",
                "hostId",
                "status",
                "startsAt",
                "endsAt",
                "capacity",
                "reservedSeats",
                "availableSeats",
                "utilizationPercent",
                "price",
            ],
            json!({
                "id": int(1, None), "name": { "type": "string" }, "hostId": int(1, None),
                "status": event_status, "startsAt": date_time(), "endsAt": date_time(),
                "capacity": int(1, None), "reservedSeats": int(0, None),
                "availableSeats": int(0, None), "utilizationPercent": { "type": "number" },
                "price": int(0, None),
            }),
        ),
    );
    let mut stats_required = flow_keys.to_vec();
    stats_required.push("event");
    let event_brief = obj(
        &["name", "venue", "startsAt", "endsAt", "price", "status"],
        json!({
            "name": { "type": "string" }, "venue": { "type": "string" },
            "startsAt": date_time(), "endsAt": date_time(), "price": int(0, None),
            "status": { "type": "string", "enum": ["not_on_sale", "on_sale", "sold_out", "started", "ended", "cancelled"] },
        }),
    );
    json!({
        "Error": obj(&["statusCode", "message", "code", "errors"], json!({
            "statusCode": int(400, Some(599)),
            "message": { "type": "string" },
            "code": { "type": "string", "description": "Stable machine-readable code" },
            "errors": { "type": "array", "items": obj(&["field", "message"], json!({
                "field": { "type": "string" }, "message": { "type": "string" },
            })) },
        })),
        "PageInfo": page_info,
        "Counts": counts,
        "User": obj(&["id", "username", "name", "email", "role", "createdAt", "emailVerified"], json!({
            "id": int(1, None), "username": { "type": "string" }, "name": { "type": "string" },
            "email": { "type": "string" },
            "role": { "type": "string", "enum": ["guest", "host", "admin"] },
            "createdAt": date_time(),
            "emailVerified": { "type": "boolean" },
        })),
        "Session": obj(
            &["user", "accessToken", "accessTokenExpiresAt", "refreshTokenExpiresAt"],
            json!({
                "user": r("User"), "accessToken": { "type": "string" },
                "refreshToken": { "type": "string", "description": "Absent for a browser (a request with Sec-Fetch-Site): its httpOnly refreshToken cookie carries it." },
                "accessTokenExpiresAt": date_time(), "refreshTokenExpiresAt": date_time(),
            }),
        ),
        "Event": obj(
            &["id", "name", "description", "hostId", "venue", "startsAt", "endsAt", "capacity",
              "reservedSeats", "availableSeats", "price", "maxPerUser", "waitlistOpen", "status"],
            json!({
                "id": int(1, None), "name": { "type": "string" },
                "description": { "type": "string" }, "hostId": int(1, None),
                "venue": { "type": "string" }, "startsAt": date_time(), "endsAt": date_time(),
                "capacity": int(1, None), "reservedSeats": int(0, None),
                "availableSeats": int(0, None), "price": int(0, None),
                "maxPerUser": nullable("integer"), "waitlistOpen": { "type": "boolean" },
                "onSaleAt": { "type": ["string", "null"], "format": DATE_TIME,
                    "description": "When bookings open; null: open" },
                "waitingRoom": { "type": "boolean", "description": "Buyers queue and book with an admission token" },
                "checkout": { "type": "string", "enum": ["instant", "hold"] },
                "holdSeconds": { "type": "integer", "description": "hold checkout only" },
                "paymentProvider": { "type": "string", "enum": ["manual", "stripe"] },
                "refundUntilHours": nullable("integer"),
                "status": event_status,
                "waitlistLength": { "type": "integer", "minimum": 0,
                    "description": "Seats waited for (the event's host and admins only)" },
            }),
        ),
        "EventPage": obj(&["items", "pageInfo"], json!({
            "items": { "type": "array", "items": r("Event") }, "pageInfo": r("PageInfo"),
        })),
        "EventDeleted": obj(&["id", "name", "cancelled", "bookingsCancelled", "waitlistCleared"], json!({
            "id": int(1, None), "name": { "type": "string" }, "cancelled": { "type": "boolean" },
            "bookingsCancelled": int(0, None), "waitlistCleared": int(0, None),
        })),
        "BookingOutcome": obj(&["requestId", "status"], json!({
            "requestId": { "type": "string", "format": "uuid" },
            "messageId": { "type": "string", "format": "uuid" },
            "eventId": int(1, None),
            "status": { "type": "string", "enum": ["pending", "confirmed", "held", "partial", "waitlisted", "rejected", "cancelled", "expired", "refund_pending", "refunded"] },
            "ticketTypeId": nullable("integer"),
            "expiresAt": { "type": ["string", "null"], "format": DATE_TIME, "description": "held: pay before this" },
            "statusUrl": { "type": "string" },
            "seatsRequested": int(1, Some(10)), "seats": int(0, Some(10)),
            "seatsWaitlisted": int(0, Some(10)), "bookingId": nullable("integer"),
            "cost": int(0, None), "position": nullable("integer"), "reason": nullable("string"),
        })),
        "Cancelled": obj(&["eventId", "seatsFreed", "bookingsCancelled", "waitlistServed"], json!({
            "eventId": int(1, None), "seatsFreed": int(0, None),
            "bookingsCancelled": int(0, None), "waitlistServed": int(0, None),
            "refunds": { "type": "integer", "minimum": 0, "description": "Refunds queued for paid bookings" },
        })),
        "TicketType": obj(&["id", "eventId", "name", "price", "hidden", "isDefault", "sold"], json!({
            "id": int(1, None), "eventId": int(1, None), "name": string(1, 100),
            "price": int(0, None), "quota": nullable("integer"), "maxPerUser": nullable("integer"),
            "salesStart": { "type": ["string", "null"], "format": DATE_TIME },
            "salesEnd": { "type": ["string", "null"], "format": DATE_TIME },
            "hidden": { "type": "boolean" }, "isDefault": { "type": "boolean" },
            "sold": int(0, None),
            "available": { "type": ["integer", "null"], "description": "Left under the quota (before the event's capacity)" },
        })),
        "TicketTypeBody": {
            "type": "object", "additionalProperties": false,
            "properties": {
                "name": string(1, 100), "price": int(0, None),
                "quota": { "type": ["integer", "null"], "minimum": 1 },
                "maxPerUser": { "type": ["integer", "null"], "minimum": 1 },
                "salesStart": { "type": ["string", "null"], "format": DATE_TIME },
                "salesEnd": { "type": ["string", "null"], "format": DATE_TIME },
                "hidden": { "type": "boolean" },
            },
        },
        "Payment": obj(&["bookingId", "provider", "amount", "currency"], json!({
            "bookingId": int(1, None),
            "provider": { "type": "string", "enum": ["manual", "stripe"] },
            "amount": int(0, None), "currency": { "type": "string" },
            "expiresAt": { "type": ["string", "null"], "format": DATE_TIME },
            "sessionId": { "type": "string", "description": "stripe: the Checkout Session" },
            "url": { "type": "string", "description": "stripe: where to pay" },
            "instructions": { "type": "string", "description": "manual" },
        })),
        "Booking": obj(&["bookingId", "eventId", "seats", "cost", "status"], json!({
            "bookingId": int(1, None), "requestId": { "type": "string", "format": "uuid" },
            "eventId": int(1, None), "seats": int(1, Some(10)), "cost": int(0, None),
            "status": { "type": "string", "enum": ["held", "confirmed", "expired", "cancelled", "refund_pending", "refunded"] },
            "expiresAt": { "type": ["string", "null"], "format": DATE_TIME },
        })),
        "QueuePlace": obj(&["eventId", "status", "ticket", "joinedAt", "waitlistOpen"], json!({
            "eventId": int(1, None),
            "status": { "type": "string", "enum": ["waiting", "admitted", "expired", "sold_out"] },
            "ticket": { "type": "string", "description": "`pre-N` (joined before on-sale, drawn) or `N` (arrival order)" },
            "joinedAt": date_time(),
            "position": { "type": ["integer", "null"], "minimum": 1, "description": "Place in the admission order; null before on-sale (drawn then)" },
            "ahead": { "type": ["integer", "null"], "minimum": 0 },
            "estimatedWaitSecs": { "type": ["integer", "null"], "minimum": 0 },
            "onSaleAt": { "type": ["string", "null"], "format": DATE_TIME },
            "admissionToken": { "type": ["string", "null"], "description": "Send as X-Admission-Token to book (admitted; or sold out with the waitlist open, to join it)" },
            "admissionExpiresAt": { "type": ["string", "null"], "format": DATE_TIME },
            "waitlistOpen": { "type": "boolean" },
            "retryAfterSecs": { "type": ["integer", "null"], "minimum": 1, "description": "Poll again after this long (also the Retry-After header)" },
        })),
        "QueueFacts": obj(&["eventId", "seedHash", "preSaleJoined", "joined", "admitted", "waiting", "soldOut", "paused", "drawRule"], json!({
            "eventId": int(1, None),
            "onSaleAt": { "type": ["string", "null"], "format": DATE_TIME },
            "opensAt": { "type": ["string", "null"], "format": DATE_TIME, "description": "When joining opens" },
            "seedHash": { "type": "string", "description": "SHA-256 of the draw's seed, published before anyone joins" },
            "seed": { "type": ["string", "null"], "description": "Revealed at on-sale" },
            "preSaleJoined": int(0, None), "joined": int(0, None), "admitted": int(0, None),
            "waiting": int(0, None), "booked": int(0, None), "soldOut": { "type": "boolean" },
            "paused": { "type": "boolean" }, "maxAdmitPerSec": { "type": ["integer", "null"] },
            "drawRule": { "type": "string" },
        })),
        "WaitlistPlace": obj(&["eventId", "position", "seatsWanted", "entries"], json!({
            "eventId": int(1, None), "position": int(1, None), "seatsWanted": int(1, Some(10)),
            "entries": { "type": "array", "items": obj(&["requestId", "position", "seatsWanted"], json!({
                "requestId": { "type": "string", "format": "uuid" }, "position": int(1, None),
                "seatsWanted": int(1, Some(10)),
            })) },
        })),
        "HistoryPage": obj(&["items", "pageInfo"], json!({
            "items": { "type": "array", "items": { "anyOf": [r("HistoryTicket"), r("HistorySummary")] } },
            "pageInfo": r("PageInfo"),
        })),
        "HistoryTicket": obj(
            &["id", "kind", "requestId", "eventId", "event", "numberOfSeats", "cost", "status",
              "createdAt", "cancelledAt"],
            json!({
                "id": { "type": ["integer", "null"], "description": "Booking id; null for waitlist entries and requests" },
                "kind": { "type": "string", "enum": ["booking", "waitlist", "request"] },
                "requestId": { "type": "string", "format": "uuid" }, "eventId": int(1, None),
                "event": event_brief.clone(), "numberOfSeats": int(1, Some(10)),
                "cost": int(0, None),
                "status": { "type": "string", "enum": ["confirmed", "held", "expired", "cancelled", "refund_pending", "refunded", "waitlisted", "rejected"] },
                "createdAt": date_time(), "cancelledAt": nullable("string"),
                "rejectReason": { "type": "string" },
            }),
        ),
        "HistorySummary": obj(
            &["eventId", "event", "activeTickets", "cancelledTickets", "totalTickets",
              "waitlistedTickets", "activeBookings", "cancelledBookings", "rejectedRequests",
              "totalCost", "firstBookedAt", "lastBookedAt"],
            json!({
                "eventId": int(1, None), "event": event_brief,
                "activeTickets": int(0, None), "cancelledTickets": int(0, None),
                "totalTickets": int(0, None), "waitlistedTickets": int(0, None),
                "activeBookings": int(0, None), "cancelledBookings": int(0, None),
                "rejectedRequests": int(0, None), "totalCost": int(0, None),
                "firstBookedAt": date_time(), "lastBookedAt": date_time(),
            }),
        ),
        "Analytics": { "type": "object", "required": analytics_required, "properties": analytics_props },
        "EventStats": { "type": "object", "required": stats_required, "properties": stats_props },
        "Notification": obj(
            &["id", "kind", "userId", "eventId", "payload", "status", "attempts", "lastError",
              "createdAt"],
            json!({
                "id": int(1, None), "kind": { "type": "string" }, "userId": nullable("integer"),
                "eventId": nullable("integer"), "payload": { "type": "object" },
                "status": { "type": "string", "enum": ["pending", "sent", "failed"] },
                "attempts": int(0, None), "lastError": nullable("string"),
                "createdAt": date_time(),
            }),
        ),
        "NewEvent": {
            "type": "object", "additionalProperties": false,
            "required": ["name", "description", "startsAt", "endsAt", "venue", "capacity", "price"],
            "properties": {
                "name": string(1, 200), "description": string(0, 5000),
                "startsAt": { "type": "string", "format": DATE_TIME, "description": "RFC 3339 with a zone, in the future" },
                "endsAt": { "type": "string", "format": DATE_TIME, "description": "After startsAt" },
                "venue": string(1, 300), "capacity": int(1, Some(1_000_000)),
                "price": { "type": "integer", "minimum": 0, "description": "Per seat, minor units" },
                "maxPerUser": int(1, None), "waitlistOpen": { "type": "boolean" },
                "onSaleAt": { "type": "string", "format": DATE_TIME, "description": "When bookings open (before startsAt); absent: at once. Requests asked earlier are rejected `not_on_sale`." },
                "waitingRoom": { "type": "boolean", "description": "Sell through the waiting room (default false)" },
                "checkout": { "type": "string", "enum": ["instant", "hold"], "description": "hold: a decision holds the seats for holdSeconds while the buyer pays (default instant)" },
                "holdSeconds": { "type": "integer", "description": "Hold length, within checkout.hold_min_secs..hold_max_secs (default checkout.hold_default_secs)" },
                "paymentProvider": { "type": "string", "enum": ["manual", "stripe"], "description": "How a hold is paid (default manual)" },
                "refundUntilHours": { "type": ["integer", "null"], "minimum": 0, "description": "Buyers cancelling a paid booking at least this many hours before the start are refunded in full (default 0); null: buyers cannot" },
                "hostId": { "type": "integer", "minimum": 1, "description": "Admin create only" },
            },
        },
        "EventChanges": {
            "type": "object", "additionalProperties": false, "required": ["id"],
            "properties": {
                "id": int(1, None), "name": string(1, 200), "description": string(0, 5000),
                "startsAt": { "type": "string", "format": DATE_TIME },
                "endsAt": { "type": "string", "format": DATE_TIME },
                "venue": string(1, 300), "capacity": int(1, Some(1_000_000)), "price": int(0, None),
                "maxPerUser": { "type": ["integer", "null"], "minimum": 1, "description": "null removes the cap" },
                "waitlistOpen": { "type": "boolean" },
                "onSaleAt": { "type": ["string", "null"], "format": DATE_TIME, "description": "null opens bookings now" },
                "waitingRoom": { "type": "boolean" },
                "checkout": { "type": "string", "enum": ["instant", "hold"], "description": "hold: a decision holds the seats for holdSeconds while the buyer pays (default instant)" },
                "holdSeconds": { "type": "integer", "description": "Hold length, within checkout.hold_min_secs..hold_max_secs (default checkout.hold_default_secs)" },
                "paymentProvider": { "type": "string", "enum": ["manual", "stripe"], "description": "How a hold is paid (default manual)" },
                "refundUntilHours": { "type": ["integer", "null"], "minimum": 0, "description": "Buyers cancelling a paid booking at least this many hours before the start are refunded in full (default 0); null: buyers cannot" },
            },
        },
        "EventId": {
            "type": "object", "additionalProperties": false, "required": ["id"],
            "properties": { "id": int(1, None) },
        },
    })
}

/// The operation table: every route of the API.
fn operations() -> Vec<Op> {
    let id = int(1, Some(i64::MAX));
    let limit = |max: i64, default: i64| json!({ "type": "integer", "minimum": 1, "maximum": max, "default": default });
    let instant = json!({ "type": "string", "description": "RFC 3339 date-time or YYYY-MM-DD" });
    let cursor = json!({ "type": "string", "description": "nextCursor of the previous page" });
    let any = json!({ "type": "object" });
    let register = json!({
        "type": "object", "additionalProperties": false,
        "required": ["username", "name", "email", "password"],
        "properties": {
            "username": { "type": "string", "pattern": "^[A-Za-z0-9_.-]{3,32}$" },
            "name": string(1, 100), "email": { "type": "string", "format": "email", "maxLength": 254 },
            "password": { "type": "string", "minLength": 15, "maxLength": 72,
                "description": "15 characters to 72 bytes; not a common password, not mostly one character, not containing the username or the email's local part" },
            "role": { "type": "string", "enum": ["guest", "host"] },
        },
    });
    let change_password = json!({
        "type": "object", "additionalProperties": false,
        "required": ["currentPassword", "newPassword"],
        "properties": {
            "currentPassword": { "type": "string" },
            "newPassword": { "type": "string", "minLength": 15, "maxLength": 72 },
        },
    });
    let verify = json!({
        "type": "object", "additionalProperties": false,
        "properties": { "token": { "type": "string" } },
    });
    let registered = obj(
        &["username", "name", "email", "role", "emailVerified"],
        json!({
            "username": { "type": "string" }, "name": { "type": "string" },
            "email": { "type": "string" },
            "role": { "type": "string", "enum": ["guest", "host"] },
            "emailVerified": { "type": "boolean" },
        }),
    );
    let login = json!({
        "type": "object", "additionalProperties": false, "required": ["password"],
        "properties": {
            "email": { "type": "string", "description": "Email or username" },
            "username": { "type": "string", "description": "Email or username" },
            "password": { "type": "string" },
        },
    });
    let refresh = json!({
        "type": "object", "additionalProperties": false,
        "properties": { "refreshToken": { "type": "string" } },
        "description": "Optional: the refresh token when not sent as the cookie",
    });
    let book = json!({
        "type": "object", "additionalProperties": false, "required": ["eventId", "numberOfSeats"],
        "properties": {
            "eventId": int(1, None), "numberOfSeats": int(1, Some(10)),
            "allowPartial": { "type": "boolean", "default": false },
            "joinWaitlist": { "type": "boolean", "default": true },
            "ticketTypeId": { "type": "integer", "minimum": 1, "description": "Absent: the event's default type" },
        },
    });
    let cancel = json!({
        "type": "object", "additionalProperties": false, "required": ["eventId"],
        "properties": {
            "eventId": int(1, None), "bookingId": int(1, None), "cancelAll": { "type": "boolean" },
        },
    });
    let list_params = |op: Op| {
        op.query("limit", limit(100, 50), "Page size")
            .query("cursor", cursor.clone(), "Position after the previous page")
            .query(
                "upcoming",
                json!({ "type": "boolean" }),
                "Only events not started",
            )
            .query("hostId", id.clone(), "Only this host's events")
            .query(
                "q",
                string(0, 100),
                "Case-insensitive substring of the name",
            )
    };
    vec![
        Op::new("get", "/health", "operations")
            .doc("Liveness", "The seed's body, not the envelope.")
            .raw("application/json", obj(&["status", "message", "timestamp"], json!({
                "status": { "const": "OK" }, "message": { "type": "string" }, "timestamp": date_time(),
            }))),
        Op::new("get", "/ready", "operations")
            .doc("Readiness", "Checks PostgreSQL, Redis and Kafka where configured; 503 names the failed one.")
            .ok(200, obj(&["checks"], json!({ "checks": { "type": "object",
                "additionalProperties": { "type": "string", "enum": ["ok", "not configured", "failed"] } } }))),
        Op::new("get", "/metrics", "operations")
            .doc("Prometheus metrics", "Text exposition format. On this port only with `Authorization: Bearer <metrics.token>` (401 without, 403 when no token is configured); every role also serves it on `metrics.listen`.")
            .raw("text/plain", json!({ "type": "string" }))
            .errors(&[401, 403]),
        Op::new("get", "/api/openapi.json", "operations")
            .doc("This document", "OpenAPI 3.1.")
            .raw("application/json", json!({ "type": "object" })),
        Op::new("get", "/api/docs", "operations")
            .doc("API reference page", "Renders this document in the browser.")
            .raw("text/html", json!({ "type": "string" })),
        Op::new("get", "/api/docs/app.js", "operations")
            .doc("Reference page script", "Served by the binary; nothing is fetched from elsewhere.")
            .raw("text/javascript", json!({ "type": "string" })),
        Op::new("get", "/api/user", "accounts")
            .doc("API info", "Name, version and the main endpoints.")
            .ok(200, any.clone()),
        Op::new("get", "/api/user/", "accounts")
            .doc("API info", "As `GET /api/user`.")
            .ok(200, any.clone()),
        Op::new("post", "/api/user/register", "accounts")
            .doc("Register", "Creates a guest (default) or host with an unconfirmed address and emails the confirmation link; `admin` is refused (403). A taken username is a 409 `username_taken`. An address that already has an account gets the same 201 (no account is created; its owner is emailed), so registering does not reveal who has an account.")
            .body(register)
            .ok(201, registered)
            .errors(&[403, 409]),
        Op::new("get", "/api/user/verify-email", "accounts")
            .doc("Confirm the email address (link)", "The link in the confirmation email. 400 `invalid_verification_token` for a bad or expired token.")
            .query("token", json!({ "type": "string" }), "The token from the email")
            .ok(200, obj(&["emailVerified"], json!({ "emailVerified": { "type": "boolean" } })))
            .errors(&[400]),
        Op::new("post", "/api/user/verify-email", "accounts")
            .doc("Confirm the email address", "`{ token }` from the email (or `?token=`).")
            .query("token", json!({ "type": "string" }), "The token from the email")
            .optional_body(verify)
            .ok(200, obj(&["emailVerified"], json!({ "emailVerified": { "type": "boolean" } })))
            .errors(&[400]),
        Op::new("post", "/api/user/verify-email/resend", "accounts")
            .doc("Send the confirmation email again", "202 when sent, 200 when already confirmed.")
            .auth(Auth::User)
            .ok(202, obj(&["emailVerified"], json!({ "emailVerified": { "type": "boolean" } })))
            .ok(200, obj(&["emailVerified"], json!({ "emailVerified": { "type": "boolean" } }))),
        Op::new("post", "/api/user/password", "accounts")
            .doc("Change the password", "Checks the current password (401 when wrong, counted like logins), applies the password policy to the new one (400 naming `newPassword`), then ends every session of the account — refresh and access tokens — and answers with a new session, as login does.")
            .auth(Auth::User)
            .body(change_password)
            .ok(200, r("Session"))
            .errors(&[401, 429]),
        Op::new("post", "/api/user/login", "accounts")
            .doc("Log in", "By email or username. Unknown user and wrong password get the same 401. Sets the `accessToken` and `refreshToken` cookies, and `deviceToken` (this browser logged in to this account); a browser (a request with `Sec-Fetch-Site`) gets no `refreshToken` in the body. The device counts only for the account it logged in to. More than `auth.login_attempts` attempts on one account within `auth.login_window` → 429 `login_throttled`; a client with that account's `deviceToken` has a count of its own, so guessing elsewhere cannot lock the owner out.")
            .body(login)
            .ok(200, r("Session"))
            .errors(&[401, 429]),
        Op::new("post", "/api/user/refresh", "accounts")
            .doc("Rotate the refresh token", "From the body or the cookie. Reusing a rotated token revokes its whole login (401).")
            .optional_body(refresh.clone())
            .ok(200, r("Session"))
            .errors(&[401]),
        Op::new("post", "/api/user/logout", "accounts")
            .doc("Log out", "Revokes the presented refresh token and the access token used (at once, not at its expiry), and the pages' session of the `asSession` cookie when sent; or every session with `all=true`. Clears the cookies.")
            .auth(Auth::User)
            .query("all", json!({ "type": "boolean" }), "End every session of the caller")
            .optional_body(refresh)
            .ok(200, obj(&["revokedSessions"], json!({ "revokedSessions": int(0, None) }))),
        Op::new("get", "/api/user/me", "accounts")
            .doc("The caller", "401 when the account was deleted.")
            .auth(Auth::User)
            .ok(200, r("User")),
        Op::new("get", "/api/user/bookings", "history")
            .doc("Booking history", "Bookings, waitlist entries and rejected requests of the caller, newest first (`tickets`), or grouped by event over all matching rows (`summary`). Keyset-paginated; every bad parameter is a 400 naming it.")
            .auth(Auth::User)
            .query("limit", limit(100, 20), "Page size")
            .query("cursor", cursor.clone(), "nextCursor of the previous page of the same view")
            .query("eventId", id.clone(), "Only this event")
            .query("status", json!({ "type": "string", "enum": ["confirmed", "held", "expired", "cancelled", "refunded", "waitlisted", "rejected"] }), "Only this status")
            .query("from", instant.clone(), "At or after")
            .query("to", instant.clone(), "At or before (a bare date: the whole day)")
            .query("view", json!({ "type": "string", "enum": ["tickets", "summary"] }), "Shape of the items")
            .ok(200, r("HistoryPage")),
        list_params(Op::new("get", "/api/events/all", "events"))
            .doc("The catalogue", "Active events, soonest first; from the cache when it can answer completely.")
            .ok(200, r("EventPage")),
        Op::new("post", "/api/events/create", "events")
            .doc("Create an event", "Hosts and admins; the caller becomes the host.")
            .auth(Auth::Role)
            .body(r("NewEvent"))
            .ok(201, r("Event")),
        Op::new("post", "/api/events/update", "events")
            .doc("Change an event", "Its host or an admin. Capacity below the reserved seats → 409 `capacity_below_reserved`; raising it serves the waitlist.")
            .auth(Auth::Role)
            .body(r("EventChanges"))
            .ok(200, r("Event"))
            .errors(&[404, 409]),
        Op::new("post", "/api/events/delete", "events")
            .doc("Delete (cancel) an event", "Cancelled, never removed (requests already queued for it are still decided and stored): bookings cancelled, every holder and waiting buyer notified; gone from listings. Repeating it answers the same.")
            .auth(Auth::Role)
            .body(r("EventId"))
            .ok(200, r("EventDeleted"))
            .errors(&[404]),
        Op::new("get", "/api/events/{id}", "events")
            .doc("One event", "With availability; its host and admins also see `waitlistLength` and cancelled events.")
            .auth(Auth::Optional)
            .path_param("id", id.clone())
            .ok(200, r("Event"))
            .errors(&[404]),
        Op::new("get", "/api/events/{id}/stats", "analytics")
            .doc("One event's figures", "The event's host or an admin.")
            .auth(Auth::Role)
            .path_param("id", id.clone())
            .query("from", instant.clone(), "Flows at or after")
            .query("to", instant.clone(), "Flows at or before")
            .ok(200, r("EventStats"))
            .errors(&[404]),
        Op::new("post", "/api/events/book", "bookings")
            .doc("Book seats", "Durable when answered. Plain: 202 with the outcome (in-process) or `pending` (Kafka). With `Prefer: wait=N`: 201 confirmed, 202 waitlisted, 409 rejected (`sold_out`, `per_user_limit`, `event_closed`, `waitlist_closed`, `not_on_sale`: asked before the event's `onSaleAt`, `admission_used`: the waiting-room admission booked before). A decision not known in time: 202 `pending` with `statusUrl`. The same Idempotency-Key never books twice. Cost: seats × the lower of the price shown at the request and the price at the decision. Kafka consumers too far behind: 503 with Retry-After.")
            .auth(Auth::User)
            .header("Idempotency-Key", string(1, 255), "Retries with the same key return the first outcome")
            .header("Prefer", json!({ "type": "string", "pattern": "^wait=\\d+$" }), "wait=N (seconds; more than 30 counts as 30): answer with the decision; not a non-negative number → 400")
            .header("X-Admission-Token", json!({ "type": "string" }), "Events with a waiting room: the token of an admitted buyer; missing, forged, someone else's or expired → 403 `admission_required`, `admission_invalid`, `admission_not_yours`, `admission_expired`")
            .body(book)
            .ok(201, r("BookingOutcome"))
            .ok(202, r("BookingOutcome"))
            .errors(&[403, 404, 409, 422]),
        Op::new("delete", "/api/events/book", "bookings")
            .doc("Cancel bookings", "One (`bookingId`), all (`cancelAll`) or else the latest confirmed booking of the caller on the event; in the body or the query string. Freed seats serve the waitlist in the same transaction. After the event started (or was cancelled): 409 `event_closed`.")
            .auth(Auth::User)
            .query("eventId", id.clone(), "Instead of the body")
            .query("bookingId", id.clone(), "Instead of the body")
            .query("cancelAll", json!({ "type": "boolean" }), "Instead of the body")
            .optional_body(cancel)
            .ok(200, r("Cancelled"))
            .errors(&[404, 409]),
        Op::new("get", "/api/bookings/requests/{requestId}", "bookings")
            .doc("A booking request's outcome", "Its owner or an admin (others 404).")
            .auth(Auth::User)
            .path_param("requestId", json!({ "type": "string", "format": "uuid" }))
            .ok(200, r("BookingOutcome"))
            .errors(&[404]),
        Op::new("get", "/api/events/{id}/ticket-types", "checkout")
            .doc("An event's ticket types", "On sale ones; the event's host and admins also see hidden ones.")
            .auth(Auth::Optional)
            .path_param("id", id.clone())
            .ok(200, obj(&["eventId", "ticketTypes"], json!({ "eventId": int(1, None), "ticketTypes": { "type": "array", "items": r("TicketType") } })))
            .errors(&[404]),
        Op::new("post", "/api/events/{id}/ticket-types", "checkout")
            .doc("Add a ticket type", "The event's host or an admin. `name` and `price` required.")
            .auth(Auth::Role)
            .path_param("id", id.clone())
            .body(r("TicketTypeBody"))
            .ok(201, r("TicketType"))
            .errors(&[404, 409]),
        Op::new("patch", "/api/events/{id}/ticket-types/{type_id}", "checkout")
            .doc("Change a ticket type", "409 `quota_below_sold`; the default type's price is the event's (changed with it), and it cannot be hidden (409 `default_ticket_type`).")
            .auth(Auth::Role)
            .path_param("id", id.clone())
            .path_param("type_id", id.clone())
            .body(r("TicketTypeBody"))
            .ok(200, r("TicketType"))
            .errors(&[404, 409]),
        Op::new("delete", "/api/events/{id}/ticket-types/{type_id}", "checkout")
            .doc("Delete a ticket type nobody bought", "409 `ticket_type_has_sales` (hide it instead) or `default_ticket_type`.")
            .auth(Auth::Role)
            .path_param("id", id.clone())
            .path_param("type_id", id.clone())
            .ok(200, any.clone())
            .errors(&[404, 409]),
        Op::new("post", "/api/bookings/{id}/pay", "checkout")
            .doc("How to pay a held booking", "The buyer. stripe: a Checkout Session (`url`; the same one when asked again); manual: instructions (the host marks it paid). 409 `hold_expired`, `already_confirmed`, `not_held`; 503 when Stripe is not configured or unreachable.")
            .auth(Auth::User)
            .path_param("id", id.clone())
            .ok(200, r("Payment"))
            .errors(&[404, 409, 422]),
        Op::new("post", "/api/bookings/{id}/release", "checkout")
            .doc("Give a hold back", "The buyer. The event's writer expires it on its next sweep (seats back on sale, the waitlist first); answers once it has (`expired`). 409 when not held.")
            .auth(Auth::User)
            .path_param("id", id.clone())
            .ok(200, r("Booking"))
            .errors(&[404, 409]),
        Op::new("post", "/api/bookings/{id}/mark-paid", "checkout")
            .doc("Record a manual payment", "The event's host or an admin, for a held booking or one whose hold expired (the writer then takes the seats back if they are free, else refunds). Answers with the booking once the writer applied it. 409 `already_paid`.")
            .auth(Auth::Role)
            .path_param("id", id.clone())
            .optional_body(json!({ "type": "object", "additionalProperties": false, "properties": { "reference": string(1, 200) } }))
            .ok(200, r("Booking"))
            .errors(&[404, 409]),
        Op::new("post", "/api/bookings/{id}/refund", "checkout")
            .doc("Cancel and refund a booking", "The event's host or an admin, whatever the refund policy: seats freed (waitlist first), a refund queued per payment (`refund_pending` → `refunded`).")
            .auth(Auth::Role)
            .path_param("id", id.clone())
            .ok(200, r("Cancelled"))
            .errors(&[404, 409]),
        Op::new("post", "/api/payments/stripe/webhook", "checkout")
            .doc("Stripe webhook", "Verified by `Stripe-Signature` (HMAC-SHA256 of `t.payload` with the endpoint secret, `payments.webhook_tolerance_secs`). 400 `invalid_signature`: nothing changed. 200 `{received}` after recording a capture; `{received, duplicate}` for an event id already processed; `{received, ignored}` for other event types and unknown sessions (logged, counted in `payment_webhooks_total`). 404 when this server has no webhook secret configured.")
            .body(json!({ "type": "object", "description": "A Stripe event" }))
            .raw("application/json", json!({ "type": "object", "properties": { "received": { "type": "boolean" }, "duplicate": { "type": "boolean" }, "ignored": { "type": "string" } } }))
            .errors(&[404]),
        Op::new("get", "/api/events/{id}/queue", "waiting room")
            .doc("A waiting room's public facts", "The draw's seed hash (from the start), the seed (from on-sale), how many joined before on-sale and how far admission got: enough to recompute the pre-sale order (`drawRule`). 409 `no_waiting_room`.")
            .path_param("id", id.clone())
            .ok(200, r("QueueFacts"))
            .errors(&[404, 409]),
        Op::new("post", "/api/events/{id}/queue", "waiting room")
            .doc("Join the waiting room", "201 with a new place, 200 with the place already held (one per account). Before on-sale: a pre-sale ticket, ordered by the draw at on-sale; after: arrival order. 409 `queue_not_open` (before `waiting_room.opens_before` ahead of onSaleAt), `event_closed`, `no_waiting_room`. Rate-limited per IP (`rate_limit.queue_join`).")
            .auth(Auth::User)
            .path_param("id", id.clone())
            .ok(201, r("QueuePlace"))
            .ok(200, r("QueuePlace"))
            .errors(&[404, 409]),
        Op::new("patch", "/api/events/{id}/queue", "waiting room")
            .doc("Pause, resume or cap admission", "The event's host or an admin.")
            .auth(Auth::Role)
            .path_param("id", id.clone())
            .body(json!({ "type": "object", "additionalProperties": false, "properties": {
                "paused": { "type": "boolean" },
                "maxAdmitPerSec": { "type": "integer", "minimum": 0, "maximum": 1_000_000, "description": "0 removes the cap" },
            } }))
            .ok(200, r("QueueFacts"))
            .errors(&[404, 409]),
        Op::new("get", "/api/events/{id}/queue/me", "waiting room")
            .doc("My place in the waiting room", "Read from the room's store only (never the database). While waiting, `Retry-After` says when to ask again (stretched with the length of the line). Admitted: `admissionToken`. 404 when not in the queue.")
            .auth(Auth::User)
            .path_param("id", id.clone())
            .ok(200, r("QueuePlace"))
            .errors(&[404, 409]),
        Op::new("get", "/api/events/{id}/queue/me/stream", "waiting room")
            .doc("My place, live (Server-Sent Events)", "`event: status` with a QueuePlace as `data` whenever the status, place or people ahead change; comments keep it open; it ends after `admitted` or `expired`.")
            .auth(Auth::User)
            .path_param("id", id.clone())
            .raw("text/event-stream", json!({ "type": "string" }))
            .errors(&[404, 409]),
        Op::new("get", "/api/events/{id}/waitlist/me", "bookings")
            .doc("My place in the waitlist", "404 when not waiting.")
            .auth(Auth::User)
            .path_param("id", id.clone())
            .ok(200, r("WaitlistPlace"))
            .errors(&[404]),
        Op::new("delete", "/api/events/{id}/waitlist/me", "bookings")
            .doc("Leave the waitlist", "The request ends rejected (withdrawn).")
            .auth(Auth::User)
            .path_param("id", id.clone())
            .ok(200, obj(&["eventId", "entriesRemoved"], json!({
                "eventId": int(1, None), "entriesRemoved": int(1, None),
            })))
            .errors(&[404]),
        Op::new("patch", "/api/admin/users/{id}", "admin")
            .doc("Set a user's role", "Demoting the last admin → 409 `last_admin`.")
            .auth(Auth::Role)
            .path_param("id", id.clone())
            .body(json!({ "type": "object", "additionalProperties": false, "required": ["role"],
                "properties": { "role": { "type": "string", "enum": ["guest", "host", "admin"] } } }))
            .ok(200, r("User"))
            .errors(&[404, 409]),
        list_params(Op::new("get", "/api/admin/events", "admin"))
            .doc("Every event", "Cancelled ones included.")
            .auth(Auth::Role)
            .ok(200, r("EventPage")),
        Op::new("post", "/api/admin/events", "admin")
            .doc("Create an event for a host", "`hostId` must be an existing host or admin.")
            .auth(Auth::Role)
            .body(r("NewEvent"))
            .ok(201, r("Event")),
        Op::new("patch", "/api/admin/events", "admin")
            .doc("Change any event", "As `POST /api/events/update`.")
            .auth(Auth::Role)
            .body(r("EventChanges"))
            .ok(200, r("Event"))
            .errors(&[404, 409]),
        Op::new("delete", "/api/admin/events", "admin")
            .doc("Delete or cancel any event", "As `POST /api/events/delete`.")
            .auth(Auth::Role)
            .body(r("EventId"))
            .ok(200, r("EventDeleted"))
            .errors(&[404]),
        Op::new("get", "/api/admin/analytics", "analytics")
            .doc("Organiser figures", "Flows within from/to, current capacity and waitlists, top events, per-event utilisation (paginated).")
            .auth(Auth::Role)
            .query("limit", limit(100, 5), "How many most popular events")
            .query("perEventLimit", limit(500, 50), "perEventUtilization page size")
            .query("cursor", cursor.clone(), "perEventPageInfo.nextCursor")
            .query("hostId", id.clone(), "Only this host's events")
            .query("from", instant.clone(), "Flows at or after")
            .query("to", instant, "Flows at or before")
            .ok(200, r("Analytics")),
        Op::new("get", "/api/admin/notifications", "admin")
            .doc("Notifications by status", "Newest first; dead letters by default. Never an email address.")
            .auth(Auth::Role)
            .query("status", json!({ "type": "string", "enum": ["failed", "pending", "sent"] }), "Which")
            .query("limit", limit(200, 50), "Page size")
            .query("before", id.clone(), "pageInfo.nextBefore of the previous page")
            .ok(200, obj(&["items", "pageInfo"], json!({
                "items": { "type": "array", "items": r("Notification") },
                "pageInfo": obj(&["hasMore", "nextBefore"], json!({
                    "hasMore": { "type": "boolean" }, "nextBefore": nullable("integer"),
                })),
            }))),
        Op::new("post", "/api/admin/notifications/{id}/retry", "admin")
            .doc("Retry a dead letter", "Not failed → 409 `not_failed`.")
            .auth(Auth::Role)
            .path_param("id", id)
            .ok(200, obj(&["id", "status"], json!({ "id": int(1, None), "status": { "const": "pending" } })))
            .errors(&[409]),
    ]
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for op in operations() {
        let item = paths.entry(op.path.to_owned()).or_insert_with(|| json!({}));
        item[op.method] = op.render();
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "AtomicSeats API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Ticket booking that never oversells. Success bodies are `{ statusCode, data, message }`; errors are `{ statusCode, message, code, errors }` with `errors` naming bad fields.",
            "license": { "name": "ISC", "identifier": "ISC" },
        },
        "tags": [
            { "name": "operations" }, { "name": "accounts" }, { "name": "events" },
            { "name": "bookings" }, { "name": "waiting room" }, { "name": "history" },
            { "name": "analytics" }, { "name": "admin" },
        ],
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "responses": error_responses(),
            "securitySchemes": {
                "bearerAuth": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" },
                "cookieAuth": { "type": "apiKey", "in": "cookie", "name": "accessToken" },
            },
        },
    })
}

/// `GET /api/openapi.json`.
pub async fn serve_document() -> HttpResponse {
    HttpResponse::Ok().json(document())
}

const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'";

/// `GET /api/docs`.
pub async fn serve_page() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_SECURITY_POLICY, PAGE_POLICY))
        .content_type("text/html; charset=utf-8")
        .body(include_str!("openapi/docs.html"))
}

/// `GET /api/docs/app.js`.
pub async fn serve_script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .body(include_str!("openapi/docs.js"))
}

/// Registers the three routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    use crate::http::resource;
    cfg.service(resource("/api/openapi.json").get(serve_document))
        .service(resource("/api/docs").get(serve_page))
        .service(resource("/api/docs/app.js").get(serve_script));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let text = doc.to_string();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("\"$ref\":\"#/components/") {
            rest = &rest[i + 21..];
            let end = rest.find('"').unwrap_or(rest.len());
            let mut parts = rest[..end].split('/');
            let (kind, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            assert!(
                doc["components"][kind].get(name).is_some(),
                "unresolved #/components/{kind}/{name}"
            );
        }
        assert_eq!(doc["openapi"], "3.1.0");
    }
}
