//! The event writer (engine v2): decides booking requests against each event's state held in
//! memory, and pipelines the transactions that record the decisions.
//!
//! One writer owns a set of events (an in-process shard, or a Kafka consumer's partitions).
//! For each batch it:
//!
//! 1. **screens** the requests: defects and unknown accounts are answered at once, requests
//!    that may be stored already (retries, redeliveries) answer from what is stored, and a
//!    request whose id is in a transaction still in flight waits for that transaction;
//! 2. **decides** each event's requests with the pure [`domain::allocate`] against the event's
//!    state after every decision before it — including those not committed yet — and moves
//!    that state forward;
//! 3. **writes** the batch in one transaction ([`store::Conn::commit`]) while it goes on to the
//!    next batch: up to `booking.pipeline_depth` transactions in flight, each on its own
//!    connection;
//! 4. **settles** transactions in order: answers each request only after its own commit, then
//!    updates the cache and wakes the notifier (the one after-commit path).
//!
//! A decision made on stale state never commits: `engine_advance` checks every event's version
//! in the same transaction, and a write behind the writer's back (a cancellation, a host's
//! edit) bumps that version. A failed transaction fails every later one that touched the same
//! events (their expected versions chain through it); the writer then drops those events'
//! state, puts the requests back at the front in their order and decides them again. A batch
//! the database refuses (a constraint) is split so that one bad request is answered alone.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::bookings::domain::{
    self, BookingRequest, BookingStatus, EventSeats, Holdings, Outcome, Plan, Reason, Status,
    TicketType, WaitEntry,
};
use crate::bookings::engine;
use crate::bookings::queue::Envelope;
use crate::bookings::store::{self, CommitError, Writes};
use crate::events::model::Event;
use crate::notifications::kind::Notice;
use crate::state::AppState;

/// Longest pause between attempts while PostgreSQL cannot be reached.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Booking ids taken from the sequence at a time.
const ID_BLOCK: i64 = 1024;
/// Failed sweep transactions after which a chore (a hold to expire, a payment to apply) is
/// applied alone, so that one that cannot be applied never holds back the others.
const ISOLATE_AFTER: u32 = 2;
/// Failed attempts after which a chore is reported stuck (an ERROR log, `booking_chores_stuck`).
const STUCK_AFTER: u32 = 4;
/// Longest pause between two attempts of a chore that keeps failing alone.
const MAX_CHORE_BACKOFF: Duration = Duration::from_secs(300);
/// Consecutive failed transactions after which the writer says so at ERROR (and again every
/// as many more): a writer whose commits keep failing decides nothing.
const LOUD_AFTER: u32 = 20;

/// The failed attempts of one chore (by booking).
#[derive(Debug, Clone, Copy)]
struct Trouble {
    failures: u32,
    /// Not tried again before this.
    retry_at: tokio::time::Instant,
}

/// What the writer knows of one event: its row, ticket types and waitlist after every decision
/// so far.
#[derive(Debug, Clone)]
struct EventState {
    event: Event,
    /// Its ticket types (`sold` moved by every decision).
    types: Vec<TicketType>,
    /// The waitlist, FIFO.
    waitlist: Vec<WaitEntry>,
    /// Held + confirmed + waitlisted seats per user (loaded per user when the event or one of
    /// its types has a cap).
    held: Holdings,
}

impl EventState {
    fn capped(&self) -> bool {
        self.event.max_per_user.is_some() || self.types.iter().any(|t| t.max_per_user.is_some())
    }

    fn default_type(&self) -> Option<i64> {
        self.types.iter().find(|t| t.is_default).map(|t| t.id)
    }

    /// Moves a ticket type's count (in memory; the batch writes the same).
    fn type_seats(&mut self, ticket_type: Option<i64>, seats: i32, w: &mut Writes) {
        let Some(t) = ticket_type.or(self.default_type()) else {
            return;
        };
        if let Some(tt) = self.types.iter_mut().find(|x| x.id == t) {
            tt.sold += seats;
        }
        w.type_seats(t, seats);
    }

    fn seats(&self, now: DateTime<Utc>) -> EventSeats {
        EventSeats {
            capacity: self.event.capacity,
            reserved: self.event.reserved_seats,
            max_per_user: self.event.max_per_user,
            waitlist_open: self.event.waitlist_open,
            closed: self.event.closed_at(now).is_some(),
            price: self.event.price,
            on_sale_at: self.event.on_sale_at,
        }
    }
}

/// A batch and what its transaction will make of it.
struct Batch {
    /// Its envelopes in arrival order.
    envelopes: Vec<Envelope>,
    /// The answer of each request id decided by this batch (including those answered from
    /// what was stored).
    outcomes: HashMap<Uuid, Result<Outcome, String>>,
    /// Rows to write (empty when nothing changes).
    writes: Writes,
    /// Events after the batch (for the cache).
    events: Vec<Event>,
    /// Waitlist entries served.
    served: usize,
    /// Requests answered from what was already stored (idempotent retries, redeliveries,
    /// a reused key): not decisions of this batch.
    replayed: HashSet<Uuid>,
    /// Bookings whose hold expiry or payment this batch applies (the sweep's work).
    chores: Vec<i64>,
}

impl Batch {
    fn touched(&self) -> impl Iterator<Item = i64> + '_ {
        self.writes.advance.iter().map(|a| a.event_id)
    }
}

type Committed = (Option<store::Conn>, Result<(), CommitError>);

/// A batch whose transaction is running.
struct InFlight {
    batch: Batch,
    task: JoinHandle<(store::Conn, Result<(), CommitError>)>,
    /// The task's result once [`Writer::wait_front`] saw it finish.
    done: Option<Committed>,
}

async fn outcome_of(task: &mut JoinHandle<(store::Conn, Result<(), CommitError>)>) -> Committed {
    match task.await {
        Ok((conn, result)) => (Some(conn), result),
        Err(e) => {
            tracing::error!(error = %e, "a booking transaction task failed");
            (None, Err(CommitError::Lost(e.to_string())))
        }
    }
}

/// A writer's batches, numbered so that a caller can learn when a whole batch it submitted is
/// decided (Kafka commits offsets then).
pub struct Writer<T> {
    state: AppState,
    url: String,
    depth: usize,
    batch_max: usize,
    conns: Vec<store::Conn>,
    events: HashMap<i64, EventState>,
    /// Requests not in a transaction yet (retries at the front).
    waiting: VecDeque<Envelope>,
    in_flight: VecDeque<InFlight>,
    in_flight_ids: HashSet<Uuid>,
    /// Submitted batches not wholly decided: (seq, requests left, tag).
    open: VecDeque<(u64, usize, Option<T>)>,
    next_seq: u64,
    known_users: HashSet<i64>,
    booking_ids: VecDeque<i64>,
    failures: u32,
    /// Fires once the newest transaction in flight has moved its events (the next one's
    /// `engine_advance` waits for it).
    last_advanced: Option<tokio::sync::oneshot::Receiver<()>>,
    /// Requests given up on (refused alone by the database): the caller dead-letters them.
    dead: Vec<BookingRequest>,
    /// Bookings whose expiry or payment a transaction in flight applies.
    chores_in_flight: HashSet<i64>,
    /// Chores whose sweep transactions failed, by booking: past [`ISOLATE_AFTER`] each is
    /// applied alone, with a growing pause.
    chore_trouble: HashMap<i64, Trouble>,
    /// Transactions that failed since the last one that committed.
    failed_in_a_row: u32,
}

impl<T> Writer<T> {
    /// A writer with `booking.pipeline_depth` transactions in flight at most.
    pub fn new(state: AppState, role: &str) -> anyhow::Result<Self> {
        let settings = state.settings();
        let url = crate::db::connection_url(&settings.database, role)?;
        Ok(Self {
            depth: settings.booking.pipeline_depth.max(1),
            batch_max: settings.booking.batch_max.max(1),
            state,
            url,
            conns: Vec::new(),
            events: HashMap::new(),
            waiting: VecDeque::new(),
            in_flight: VecDeque::new(),
            in_flight_ids: HashSet::new(),
            open: VecDeque::new(),
            next_seq: 0,
            known_users: HashSet::new(),
            booking_ids: VecDeque::new(),
            failures: 0,
            last_advanced: None,
            dead: Vec::new(),
            chores_in_flight: HashSet::new(),
            chore_trouble: HashMap::new(),
            failed_in_a_row: 0,
        })
    }

    /// Whether a transaction is running.
    pub fn in_flight(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// Whether a sweep's transaction is in flight.
    pub fn sweeping(&self) -> bool {
        !self.chores_in_flight.is_empty()
    }

    /// Whether another batch can start now.
    pub fn has_room(&self) -> bool {
        self.in_flight.len() < self.depth
    }

    /// Whether anything submitted is not decided yet.
    pub fn busy(&self) -> bool {
        !self.in_flight.is_empty() || !self.waiting.is_empty()
    }

    /// Requests the database refused alone since the last call (for a dead-letter queue).
    pub fn take_dead(&mut self) -> Vec<BookingRequest> {
        std::mem::take(&mut self.dead)
    }

    /// Queues `envelopes` behind everything submitted before and starts transactions while
    /// there is room. Returns the tags of batches that are wholly decided now.
    pub async fn submit(&mut self, mut envelopes: Vec<Envelope>, tag: T) -> Vec<T> {
        let seq = self.next_seq;
        self.next_seq += 1;
        for e in &mut envelopes {
            e.seq = seq;
        }
        self.open.push_back((seq, envelopes.len(), Some(tag)));
        self.waiting.extend(envelopes);
        self.pump().await;
        self.done_tags()
    }

    /// Waits until the oldest transaction in flight has finished, without settling it.
    /// Cancel-safe (for `select!`): nothing is lost if the wait is dropped.
    pub async fn wait_front(&mut self) {
        if let Some(f) = self.in_flight.front_mut()
            && f.done.is_none()
        {
            let committed = outcome_of(&mut f.task).await;
            f.done = Some(committed);
        }
    }

    /// Waits for the oldest transaction in flight and settles it (and, when it failed, every
    /// later one). Returns the tags of batches that are wholly decided now.
    pub async fn settle(&mut self) -> Vec<T> {
        if let Some(front) = self.in_flight.pop_front() {
            match self.join(front).await {
                (batch, Ok(())) => {
                    self.failures = 0;
                    self.failed_in_a_row = 0;
                    self.finish(batch).await;
                }
                (batch, Err(e)) => self.recover(batch, e).await,
            }
        }
        self.pump().await;
        self.done_tags()
    }

    /// Settles until nothing is left (shutdown, or a caller that commits offsets per batch).
    pub async fn drain(&mut self) -> Vec<T> {
        let mut tags = Vec::new();
        while self.busy() {
            let before = (self.in_flight.len(), self.waiting.len());
            tags.extend(self.settle().await);
            if !self.in_flight() && (self.in_flight.len(), self.waiting.len()) == before {
                // Nothing could start (PostgreSQL unreachable): wait before trying again.
                tokio::time::sleep(self.backoff()).await;
                self.pump().await;
            }
        }
        tags
    }

    fn backoff(&self) -> Duration {
        (Duration::from_millis(50) * 2u32.saturating_pow(self.failures.min(5))).min(MAX_BACKOFF)
    }

    async fn join(&mut self, f: InFlight) -> (Batch, Result<(), CommitError>) {
        let InFlight {
            batch,
            mut task,
            done,
        } = f;
        let (conn, result) = match done {
            Some(d) => d,
            None => outcome_of(&mut task).await,
        };
        for e in &batch.envelopes {
            self.in_flight_ids.remove(&e.request.request_id);
        }
        if let Some(conn) = conn.filter(|c| !c.is_closed()) {
            self.conns.push(conn);
        }
        (batch, result)
    }

    /// Starts transactions while there is room and something to decide.
    async fn pump(&mut self) {
        while self.has_room() && !self.waiting.is_empty() {
            let Some(envelopes) = self.take_batch() else {
                return; // only requests waiting for a transaction in flight
            };
            match self.prepare(envelopes).await {
                Ok(batch) => self.start(batch).await,
                Err((envelopes, e)) => {
                    // A read failed (PostgreSQL unreachable): put them back, try again later.
                    self.failures += 1;
                    tracing::warn!(error = %e, "preparing a booking batch failed; retrying");
                    for env in envelopes.into_iter().rev() {
                        self.waiting.push_front(env);
                    }
                    return;
                }
            }
        }
    }

    /// The next batch: up to `batch_max` requests in order, skipping (for now) those whose
    /// request id is in a transaction in flight; an isolated request goes alone.
    fn take_batch(&mut self) -> Option<Vec<Envelope>> {
        let mut batch = Vec::new();
        let mut kept = VecDeque::new();
        while let Some(env) = self.waiting.pop_front() {
            if self.in_flight_ids.contains(&env.request.request_id) {
                kept.push_back(env);
                continue;
            }
            if env.isolate {
                if batch.is_empty() {
                    batch.push(env);
                } else {
                    kept.push_back(env);
                }
                break;
            }
            batch.push(env);
            if batch.len() >= self.batch_max {
                break;
            }
        }
        while let Some(env) = kept.pop_back() {
            self.waiting.push_front(env);
        }
        (!batch.is_empty()).then_some(batch)
    }

    /// Screens and decides a batch (no writes yet).
    async fn prepare(
        &mut self,
        envelopes: Vec<Envelope>,
    ) -> Result<Batch, (Vec<Envelope>, anyhow::Error)> {
        let mut outcomes = HashMap::new();
        let mut replayed = HashSet::new();
        if let Err(e) = self.screen(&envelopes, &mut outcomes, &mut replayed).await {
            return Err((envelopes, e));
        }
        // Fresh requests in arrival order, one per request id.
        let mut seen = HashSet::new();
        let fresh: Vec<&BookingRequest> = envelopes
            .iter()
            .map(|e| &e.request)
            .filter(|r| !outcomes.contains_key(&r.request_id) && seen.insert(r.request_id))
            .collect();
        let mut by_event: Vec<(i64, Vec<BookingRequest>)> = Vec::new();
        for r in fresh {
            match by_event.iter_mut().find(|(e, _)| *e == r.event_id) {
                Some((_, g)) => g.push(r.clone()),
                None => by_event.push((r.event_id, vec![r.clone()])),
            }
        }
        let mut batch = Batch {
            envelopes: Vec::new(),
            outcomes,
            writes: Writes::default(),
            events: Vec::new(),
            served: 0,
            replayed,
            chores: Vec::new(),
        };
        for (event_id, group) in by_event {
            if let Err(e) = self.decide_event(event_id, &group, &mut batch).await {
                return Err((envelopes, e));
            }
        }
        batch.envelopes = envelopes;
        Ok(batch)
    }

    /// Step 1: answers what needs no decision (defects, unknown accounts, stored requests).
    async fn screen(
        &mut self,
        envelopes: &[Envelope],
        outcomes: &mut HashMap<Uuid, Result<Outcome, String>>,
        replayed: &mut HashSet<Uuid>,
    ) -> anyhow::Result<()> {
        for e in envelopes {
            if let Some(why) = e.request.defect() {
                outcomes.insert(e.request.request_id, Err(format!("invalid request: {why}")));
            }
        }
        let maybe_stored: Vec<Uuid> = envelopes
            .iter()
            .filter(|e| e.maybe_stored && !outcomes.contains_key(&e.request.request_id))
            .map(|e| e.request.request_id)
            .collect();
        let unknown_users: Vec<i64> = envelopes
            .iter()
            .map(|e| e.request.user_id)
            .filter(|u| !self.known_users.contains(u))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if maybe_stored.is_empty() && unknown_users.is_empty() {
            return Ok(());
        }
        let mut conn = self.state.db().get().await?;
        if !maybe_stored.is_empty() {
            for o in engine::stored_outcomes(&mut conn, &maybe_stored).await? {
                replayed.insert(o.request_id);
                outcomes.insert(o.request_id, Ok(o));
            }
        }
        if !unknown_users.is_empty() {
            self.known_users
                .extend(engine::existing_users(&mut conn, &unknown_users).await?);
            for e in envelopes {
                let r = &e.request;
                if !self.known_users.contains(&r.user_id) {
                    outcomes
                        .entry(r.request_id)
                        .or_insert_with(|| Ok(unstored_rejection(r, Reason::UnknownUser)));
                }
            }
        }
        Ok(())
    }

    /// Step 2: decides one event's fresh requests and moves its state forward.
    async fn decide_event(
        &mut self,
        event_id: i64,
        requests: &[BookingRequest],
        batch: &mut Batch,
    ) -> anyhow::Result<()> {
        if !self.events.contains_key(&event_id) {
            match load_event(&self.state, event_id).await? {
                Some(s) => {
                    self.events.insert(event_id, s);
                }
                None => {
                    // Deleted: nothing can be stored for it (its rows would cascade away).
                    for r in requests {
                        batch
                            .outcomes
                            .insert(r.request_id, Ok(unstored_rejection(r, Reason::EventClosed)));
                    }
                    return Ok(());
                }
            }
        }
        self.load_held(event_id, requests).await?;
        let Some(st) = self.events.get(&event_id) else {
            return Ok(());
        };
        let plan = domain::allocate(
            st.seats(Utc::now()),
            &st.types,
            &st.waitlist,
            requests,
            &st.held,
        );
        // One booking id per row the plan writes: every served entry and every confirmation.
        let rows = plan.served.len() + plan.decided.iter().filter(|d| d.confirmed > 0).count();
        self.reserve_booking_ids(rows).await?;
        let Some(st) = self.events.get_mut(&event_id) else {
            return Ok(());
        };
        record(st, &plan, requests, &mut self.booking_ids, batch, 0);
        Ok(())
    }

    /// The cap needs each buyer's seats on the event; loaded once per buyer (a buyer not in
    /// the map has nothing in flight on this event, so the committed state is theirs).
    async fn load_held(
        &mut self,
        event_id: i64,
        requests: &[BookingRequest],
    ) -> anyhow::Result<()> {
        let Some(st) = self.events.get(&event_id) else {
            return Ok(());
        };
        if !st.capped() {
            return Ok(());
        }
        let default_type = st.default_type();
        let missing: Vec<i64> = requests
            .iter()
            .map(|r| r.user_id)
            .filter(|u| !st.held.by_user.contains_key(u))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let mut conn = self.state.db().get().await?;
        let rows = engine::seats_held(&mut conn, event_id, &missing, default_type).await?;
        if let Some(st) = self.events.get_mut(&event_id) {
            for u in missing {
                st.held
                    .by_user
                    .insert(u, rows.by_user.get(&u).copied().unwrap_or(0));
            }
            st.held.by_type.extend(rows.by_type);
        }
        Ok(())
    }

    async fn reserve_booking_ids(&mut self, n: usize) -> anyhow::Result<()> {
        if self.booking_ids.len() >= n {
            return Ok(());
        }
        let want = i64::try_from(n).unwrap_or(i64::MAX).max(ID_BLOCK);
        let mut conn = self.state.db().get().await?;
        let ids = engine::next_booking_ids(&mut conn, want).await?;
        self.booking_ids.extend(ids);
        Ok(())
    }

    /// Step 3: starts the batch's transaction (or settles it at once when it writes nothing).
    async fn start(&mut self, batch: Batch) {
        if batch.writes.advance.is_empty() {
            self.finish(batch).await;
            return;
        }
        let conn = match self.conns.pop() {
            Some(c) => Ok(c),
            None => store::Conn::open(&self.url).await,
        };
        let conn = match conn {
            Ok(c) => c,
            Err(e) => {
                self.failures += 1;
                tracing::warn!(error = %e, "booking writer cannot connect; retrying");
                self.requeue(batch, false);
                return;
            }
        };
        for e in &batch.envelopes {
            self.in_flight_ids.insert(e.request.request_id);
        }
        // The rows move into the task; the batch keeps its answers and the events it touches.
        let mut batch = batch;
        let to_write = std::mem::take(&mut batch.writes);
        batch.writes.advance.clone_from(&to_write.advance);
        let (advanced, next) = tokio::sync::oneshot::channel();
        let after = if self.in_flight.is_empty() {
            None
        } else {
            self.last_advanced.take()
        };
        self.last_advanced = Some(next);
        let task = tokio::spawn(async move {
            let result = conn.commit(&to_write, after, advanced).await;
            (conn, result)
        });
        metrics::gauge!("booking_transactions_in_flight").set((self.in_flight.len() + 1) as f64);
        self.in_flight.push_back(InFlight {
            batch,
            task,
            done: None,
        });
    }

    /// The sweep (every `checkout.sweep_ms`): applies the holds due to expire and the payments
    /// captured for the events `owns` says this writer decides (`shard`: the same as a filter
    /// the database applies) — in one transaction of this writer, with the waitlist service
    /// the freed seats allow. A failure leaves them for the next sweep. Returns whether there
    /// may be more due now (a full page: sweep again without waiting).
    pub async fn sweep(
        &mut self,
        owns: &(dyn Fn(i64) -> bool + Send + Sync),
        shard: Option<(i64, i64)>,
    ) -> bool {
        // One sweep in flight at a time: what it applies is still `held` for the next read.
        if !self.has_room() || self.sweeping() {
            return false;
        }
        let chores = match self.load_chores(shard).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "reading holds and payments due failed; next sweep");
                return false;
            }
        };
        let mut more = chores.len() >= self.state.settings().checkout.sweep_page as usize;
        if !more && !self.chore_trouble.is_empty() {
            // A whole page read: a troubled chore that is not in it was settled some other way
            // (a refund, a cancellation) and is no longer this writer's worry.
            let due: HashSet<i64> = chores.iter().map(|c| c.booking_id).collect();
            self.forget_settled_trouble(&due);
        }
        let chores: Vec<engine::Chore> = chores
            .into_iter()
            .filter(|c| owns(c.event_id) && !self.chores_in_flight.contains(&c.booking_id))
            .collect();
        let (chores, alone) = self.pick_chores(chores, tokio::time::Instant::now());
        more |= alone;
        let mut by_event: Vec<(i64, Vec<engine::Chore>)> = Vec::new();
        for c in chores {
            match by_event.iter_mut().find(|(e, _)| *e == c.event_id) {
                Some((_, g)) => g.push(c),
                None => by_event.push((c.event_id, vec![c])),
            }
        }
        if by_event.is_empty() {
            return false;
        }
        let mut batch = Batch {
            envelopes: Vec::new(),
            outcomes: HashMap::new(),
            writes: Writes::default(),
            events: Vec::new(),
            served: 0,
            replayed: HashSet::new(),
            chores: Vec::new(),
        };
        for (event_id, group) in by_event {
            if let Err(e) = self.apply_chores(event_id, group, &mut batch).await {
                tracing::warn!(error = %e, event.id = event_id, "applying holds and payments failed; next sweep");
                for id in batch.touched().collect::<Vec<_>>() {
                    self.events.remove(&id);
                }
                return false;
            }
        }
        self.chores_in_flight.extend(batch.chores.iter().copied());
        self.start(batch).await;
        more
    }

    /// What this sweep applies: the chores that have not kept failing, or — when one that has
    /// is due for another try — that one alone (then `true`: sweep again at once for the
    /// others). A chore that failed is never retried in a way that blocks the rest.
    fn pick_chores(
        &self,
        chores: Vec<engine::Chore>,
        now: tokio::time::Instant,
    ) -> (Vec<engine::Chore>, bool) {
        let troubled = |c: &engine::Chore| {
            self.chore_trouble
                .get(&c.booking_id)
                .filter(|t| t.failures >= ISOLATE_AFTER)
        };
        let (normal, mut isolated): (Vec<_>, Vec<_>) =
            chores.into_iter().partition(|c| troubled(c).is_none());
        isolated.retain(|c| troubled(c).is_some_and(|t| t.retry_at <= now));
        match isolated.into_iter().next() {
            Some(c) => (vec![c], !normal.is_empty()),
            None => (normal, false),
        }
    }

    /// Drops the trouble of chores that are no longer due (not in `due`, a complete read).
    fn forget_settled_trouble(&mut self, due: &HashSet<i64>) {
        self.chore_trouble.retain(|id, t| {
            let keep = due.contains(id);
            if !keep && t.failures >= STUCK_AFTER {
                metrics::gauge!("booking_chores_stuck").decrement(1.0);
            }
            keep
        });
    }

    /// A sweep transaction failed: its chores count a failure each (tried alone, with a growing
    /// pause, once they keep failing; reported stuck past [`STUCK_AFTER`]).
    fn chores_failed(&mut self, chores: &[i64], error: &dyn std::fmt::Display) {
        let now = tokio::time::Instant::now();
        let alone = chores.len() == 1;
        for id in chores {
            let t = self.chore_trouble.entry(*id).or_insert(Trouble {
                failures: 0,
                retry_at: now,
            });
            t.failures += 1;
            t.retry_at = if alone {
                now + (Duration::from_millis(250) * 2u32.saturating_pow(t.failures.min(12)))
                    .min(MAX_CHORE_BACKOFF)
            } else {
                now
            };
            if t.failures == STUCK_AFTER {
                metrics::gauge!("booking_chores_stuck").increment(1.0);
                tracing::error!(
                    booking.id = *id,
                    attempts = t.failures,
                    error = %error,
                    "a hold expiry or payment cannot be applied; retrying it alone with a growing pause"
                );
            }
        }
    }

    async fn load_chores(&self, shard: Option<(i64, i64)>) -> anyhow::Result<Vec<engine::Chore>> {
        let mut conn = self.state.db().get().await?;
        let limit = i64::from(self.state.settings().checkout.sweep_page);
        Ok(engine::chores(&mut conn, limit, shard).await?)
    }

    /// One event's chores: each hold due expires, each payment confirms its hold, re-acquires
    /// the seats of an expired one when they are free, or is refunded; then the waitlist gets
    /// what was freed.
    async fn apply_chores(
        &mut self,
        event_id: i64,
        chores: Vec<engine::Chore>,
        batch: &mut Batch,
    ) -> anyhow::Result<()> {
        if !self.events.contains_key(&event_id) {
            match load_event(&self.state, event_id).await? {
                Some(s) => {
                    self.events.insert(event_id, s);
                }
                None => return Ok(()),
            }
        }
        let Some(st) = self.events.get_mut(&event_id) else {
            return Ok(());
        };
        let mut moved = 0;
        // Two payments of one booking in one sweep: the second sees what the first made of it
        // (a paid booking's second payment is refunded), never a second transition from `held`.
        let mut now_status: HashMap<i64, BookingStatus> = HashMap::new();
        for c in chores {
            let status = now_status
                .get(&c.booking_id)
                .copied()
                .or_else(|| BookingStatus::parse(&c.status));
            batch.chores.push(c.booking_id);
            let (m, to) = settle_chore(st, &c, status, &mut batch.writes);
            moved += m;
            if let Some(to) = to {
                now_status.insert(c.booking_id, to);
            }
            match &c.session_id {
                None if status == Some(BookingStatus::Held) => {
                    metrics::counter!("holds_expired_total").increment(1);
                }
                Some(_) => metrics::counter!("payments_applied_total").increment(1),
                None => {}
            }
        }
        let plan = domain::allocate(
            st.seats(Utc::now()),
            &st.types,
            &st.waitlist,
            &[],
            &Holdings::default(),
        );
        self.reserve_booking_ids(plan.served.len()).await?;
        let Some(st) = self.events.get_mut(&event_id) else {
            return Ok(());
        };
        record(st, &plan, &[], &mut self.booking_ids, batch, moved);
        Ok(())
    }

    /// Step 4: after the commit — answers, cache, notifications, metrics.
    async fn finish(&mut self, batch: Batch) {
        for id in &batch.chores {
            self.chores_in_flight.remove(id);
            if let Some(t) = self.chore_trouble.remove(id)
                && t.failures >= STUCK_AFTER
            {
                metrics::gauge!("booking_chores_stuck").decrement(1.0);
                tracing::warn!(booking.id = *id, "a stuck chore was applied at last");
            }
        }
        let now = Utc::now();
        let mut published = Vec::with_capacity(batch.outcomes.len());
        let mut counted = HashSet::with_capacity(batch.envelopes.len());
        for e in &batch.envelopes {
            let id = e.request.request_id;
            let answer = batch.outcomes.get(&id);
            if let Some(Ok(o)) = answer {
                // A decision counts once; answering it again (a retry, a redelivery, the same
                // id twice in one batch) is a replay.
                if batch.replayed.contains(&id) || !counted.insert(id) {
                    metrics::counter!("booking_replays_total").increment(1);
                } else {
                    metrics::counter!("booking_decisions_total", "status" => o.status.as_str())
                        .increment(1);
                    let latency = (now - e.request.requested_at).to_std().unwrap_or_default();
                    metrics::histogram!("booking_decision_latency_seconds")
                        .record(latency.as_secs_f64());
                }
                published.push(o.clone());
            }
            if let Some(Err(why)) = answer {
                tracing::error!(request.id = %e.request.request_id, error = %why, "booking request cannot be decided");
                self.dead.push(e.request.clone());
            }
        }
        for event in &batch.events {
            self.state.event_cache().put(event).await;
        }
        if !batch.writes.advance.is_empty() {
            crate::notifications::wake(&self.state);
        }
        if batch.served > 0 {
            metrics::counter!("booking_waitlist_served_total").increment(batch.served as u64);
        }
        self.state.outcomes().publish(&published).await;
        for e in batch.envelopes {
            let answer = batch
                .outcomes
                .get(&e.request.request_id)
                .cloned()
                .unwrap_or_else(|| Err("the booking could not be decided".to_owned()));
            if let Some(tx) = e.reply {
                let _ = tx.send(answer);
            }
            self.close_one(e.seq);
        }
    }

    /// A transaction failed: settle every later one, drop the state of the events involved,
    /// and put the failed requests back at the front, in order.
    async fn recover(&mut self, batch: Batch, error: CommitError) {
        let mut failed = vec![(batch, error)];
        while let Some(next) = self.in_flight.pop_front() {
            match self.join(next).await {
                (b, Ok(())) => self.finish(b).await,
                (b, Err(e)) => failed.push((b, e)),
            }
        }
        self.failed_in_a_row = self.failed_in_a_row.saturating_add(failed.len() as u32);
        metrics::counter!("booking_writer_commit_failures_total").increment(failed.len() as u64);
        if let Some((b, e)) = failed.first() {
            // Later ones may have failed only because they chained on this one.
            if !b.chores.is_empty() {
                let chores = b.chores.clone();
                self.chores_failed(&chores, e);
            }
            if self.failed_in_a_row >= LOUD_AFTER
                && self.failed_in_a_row % LOUD_AFTER < failed.len() as u32
            {
                tracing::error!(
                    failed_in_a_row = self.failed_in_a_row,
                    error = %e,
                    "the booking writer's transactions keep failing; nothing it decides commits"
                );
            }
        }
        for (b, _) in &failed {
            for id in b.touched() {
                self.events.remove(&id);
            }
            // The sweep finds what these were doing again.
            for id in &b.chores {
                self.chores_in_flight.remove(id);
            }
        }
        for (b, e) in failed.into_iter().rev() {
            match e {
                CommitError::Conflict(e) => {
                    tracing::debug!(error = %e, "event state moved under the writer; deciding again");
                    metrics::counter!("booking_writer_conflicts_total").increment(1);
                    self.requeue(b, false);
                }
                CommitError::Lost(e) => {
                    self.failures += 1;
                    tracing::warn!(error = %e, "booking transaction lost; deciding again");
                    self.requeue(b, false);
                }
                CommitError::Refused(e) if b.envelopes.len() == 1 => {
                    self.refused_alone(b, &e).await;
                }
                CommitError::Refused(e) => {
                    tracing::warn!(error = %e, requests = b.envelopes.len(), "the database refused a booking batch; deciding its requests one by one");
                    self.requeue(b, true);
                }
            }
        }
        if self.failures > 0 {
            tokio::time::sleep(self.backoff()).await;
        }
    }

    /// One request the database refuses on its own: answered (an account that no longer
    /// exists) or given up on (logged, dead-lettered by the Kafka consumer).
    async fn refused_alone(&mut self, mut b: Batch, e: &tokio_postgres::Error) {
        let user_gone = e
            .as_db_error()
            .and_then(|d| d.constraint())
            .is_some_and(|c| c.ends_with("user_id_fkey"));
        let Some(env) = <[Envelope]>::first(&b.envelopes) else {
            return;
        };
        let r = env.request.clone();
        let answer = if user_gone {
            self.known_users.remove(&r.user_id);
            Ok(unstored_rejection(&r, Reason::UnknownUser))
        } else {
            tracing::error!(request.id = %r.request_id, error = %e, "booking request refused by the database");
            metrics::counter!("booking_dead_letters_total").increment(1);
            Err("the booking request was refused and cannot be decided".to_owned())
        };
        b.outcomes = HashMap::from([(r.request_id, answer)]);
        b.writes = Writes::default();
        b.events.clear();
        self.finish(b).await;
    }

    fn requeue(&mut self, b: Batch, isolate: bool) {
        for mut env in b.envelopes.into_iter().rev() {
            env.maybe_stored = true;
            env.isolate = env.isolate || isolate;
            self.waiting.push_front(env);
        }
    }

    fn close_one(&mut self, seq: u64) {
        if let Some(entry) = self.open.iter_mut().find(|(s, _, _)| *s == seq) {
            entry.1 = entry.1.saturating_sub(1);
        }
    }

    fn done_tags(&mut self) -> Vec<T> {
        let mut tags = Vec::new();
        while let Some((_, 0, _)) = self.open.front() {
            if let Some((_, _, Some(tag))) = self.open.pop_front() {
                tags.push(tag);
            }
        }
        tags
    }
}

/// Reads an event's state (`None`: the event does not exist).
async fn load_event(state: &AppState, event_id: i64) -> anyhow::Result<Option<EventState>> {
    let mut conn = state.db().get().await?;
    let Some(event) = Event::find(&mut conn, event_id).await? else {
        return Ok(None);
    };
    let waitlist = engine::waitlist_of(&mut conn, event_id).await?;
    let types = crate::tickets::model::of_event(&mut conn, event_id)
        .await?
        .iter()
        .map(crate::tickets::model::TicketTypeRow::domain)
        .collect();
    // Admissions this event's requests used: a second use is refused (`admission_used`).
    let admissions_used = if event.waiting_room {
        engine::admissions_used(&mut conn, event_id).await?
    } else {
        HashSet::new()
    };
    Ok(Some(EventState {
        event,
        types,
        waitlist,
        held: Holdings {
            admissions_used,
            ..Holdings::default()
        },
    }))
}

/// The facts every notification about the event carries.
fn event_facts(event: &Event) -> serde_json::Value {
    json!({
        "eventId": event.id,
        "eventName": event.name,
        "venue": event.venue,
        "startsAt": event.starts_at,
        "price": event.price,
    })
}

/// A notification about `event` to `user`: the event's facts and `extra`.
fn note(event: &Event, kind: Notice, user_id: i64, extra: serde_json::Value) -> store::OutboxRow {
    let mut payload = event_facts(event);
    if let (Some(p), serde_json::Value::Object(e)) = (payload.as_object_mut(), extra) {
        p.extend(e);
    }
    store::OutboxRow::new(kind, user_id, Some(event.id), payload)
}

/// Applies a plan to the event's state and adds its rows, answers and notifications to the
/// batch. `moved` is the seats the batch's chores gave back (negative) or took before the plan
/// (the event's `reserved_seats` moves by both in one `engine_advance`).
fn record(
    st: &mut EventState,
    plan: &Plan,
    requests: &[BookingRequest],
    booking_ids: &mut VecDeque<i64>,
    batch: &mut Batch,
    moved: i32,
) {
    let event_id = st.event.id;
    let hold = st.event.holds();
    let expires_at = Utc::now() + chrono::Duration::seconds(i64::from(st.event.hold_secs));
    let w = &mut batch.writes;
    w.advance.push(store::Advance {
        event_id,
        delta: moved + plan.seats_confirmed,
        expected_version: st.event.version,
    });
    for (t, n) in &plan.type_seats {
        st.type_seats(Some(*t), *n, w);
    }

    // Waitlist entries that got seats.
    let mut served_seats: HashMap<Uuid, i32> = HashMap::new();
    for s in &plan.served {
        let booking_id = booking_ids.pop_front();
        let remaining = s.entry.seats - s.confirmed;
        let status = domain::booking_status(hold, s.cost);
        let held = status == BookingStatus::Held;
        served_seats.insert(s.entry.request_id, s.confirmed);
        w.served.push(store::ServedRow {
            request_id: s.entry.request_id,
            confirmed: s.confirmed,
            cost: s.cost,
        });
        if let Some(id) = booking_id {
            w.bookings.push(store::BookingRow {
                id,
                request_id: s.entry.request_id,
                user_id: s.entry.user_id,
                event_id,
                seats: s.confirmed,
                cost: s.cost,
                status,
                expires_at: held.then_some(expires_at),
                ticket_type_id: s.ticket_type_id,
            });
        }
        w.outbox.push(note(
            &st.event,
            if held {
                Notice::BookingHeld
            } else {
                Notice::WaitlistConfirmed
            },
            s.entry.user_id,
            json!({
                "requestId": s.entry.request_id,
                "seats": s.confirmed,
                "seatsStillWaiting": remaining,
                "cost": s.cost,
                "bookingId": booking_id,
                "expiresAt": held.then_some(expires_at),
                "fromWaitlist": true,
            }),
        ));
    }
    batch.served += plan.served.len();
    if !served_seats.is_empty() {
        st.waitlist
            .retain_mut(|e| match served_seats.get(&e.request_id) {
                Some(c) if *c >= e.seats => false,
                Some(c) => {
                    e.seats -= c;
                    true
                }
                None => true,
            });
    }

    // New requests.
    let capped = st.capped();
    for d in &plan.decided {
        let r = &requests[d.index];
        let status = Status::of(d.confirmed, d.waitlisted, r.seats);
        let booking_id = (d.confirmed > 0).then(|| booking_ids.pop_front()).flatten();
        let held = domain::booking_status(hold, d.cost) == BookingStatus::Held && d.confirmed > 0;
        if let Some(id) = booking_id {
            w.bookings.push(store::BookingRow {
                id,
                request_id: r.request_id,
                user_id: r.user_id,
                event_id,
                seats: d.confirmed,
                cost: d.cost,
                status: if held {
                    BookingStatus::Held
                } else {
                    BookingStatus::Confirmed
                },
                expires_at: held.then_some(expires_at),
                ticket_type_id: d.ticket_type_id,
            });
        }
        if d.waitlisted > 0 {
            st.waitlist.push(WaitEntry {
                request_id: r.request_id,
                user_id: r.user_id,
                seats: d.waitlisted,
                allow_partial: r.allow_partial,
                price_quoted: d.unit_price,
                ticket_type_id: d.ticket_type_id,
            });
        }
        if capped {
            let seats = d.confirmed + d.waitlisted;
            *st.held.by_user.entry(r.user_id).or_default() += seats;
            if let Some(t) = d.ticket_type_id {
                *st.held.by_type.entry((r.user_id, t)).or_default() += seats;
            }
        }
        let admission_rank = r
            .admission
            .filter(|_| d.confirmed + d.waitlisted > 0)
            .map(|a| a.rank);
        if let Some(rank) = admission_rank {
            st.held.admissions_used.insert(rank);
        }
        w.requests.push(store::RequestRow {
            id: r.request_id,
            user_id: r.user_id,
            event_id,
            seats: r.seats,
            allow_partial: r.allow_partial,
            join_waitlist: r.join_waitlist,
            idempotency_key: r.idempotency_key.clone(),
            status: status.as_str(),
            seats_confirmed: d.confirmed,
            seats_waitlisted: d.waitlisted,
            reject_reason: d.reason.map(Reason::as_str),
            cost: d.cost,
            requested_at: r.requested_at,
            ticket_type_id: d.ticket_type_id,
            // Waiting: the request row is the waitlist entry.
            price_quoted: (d.waitlisted > 0).then_some(d.unit_price),
            admission_rank: admission_rank.and_then(|r| i64::try_from(r).ok()),
        });
        // Held seats answer `held` (the request row keeps the seat counts; the status is the
        // booking's, derived when read).
        let answered = if held && d.waitlisted == 0 {
            Status::Held
        } else {
            status
        };
        let outcome = Outcome {
            request_id: r.request_id,
            event_id,
            user_id: r.user_id,
            status: answered,
            seats_requested: r.seats,
            seats_confirmed: d.confirmed,
            seats_waitlisted: d.waitlisted,
            booking_id,
            cost: d.cost,
            position: d.position,
            reason: d.reason,
            allow_partial: r.allow_partial,
            join_waitlist: r.join_waitlist,
            ticket_type_id: d.ticket_type_id,
            expires_at: held.then_some(expires_at),
        };
        let kind = match status {
            _ if held => Notice::BookingHeld,
            Status::Confirmed => Notice::BookingConfirmed,
            Status::Partial => Notice::BookingPartial,
            Status::Waitlisted => Notice::BookingWaitlisted,
            _ => Notice::BookingRejected,
        };
        w.outbox.push(note(
            &st.event,
            kind,
            r.user_id,
            json!({
                "requestId": r.request_id,
                "seatsRequested": r.seats,
                "seats": d.confirmed,
                "seatsWaitlisted": d.waitlisted,
                "cost": d.cost,
                "bookingId": booking_id,
                "position": d.position,
                "reason": d.reason.map(Reason::as_str),
                "expiresAt": held.then_some(expires_at),
            }),
        ));
        batch.outcomes.insert(r.request_id, Ok(outcome));
    }
    st.event.reserved_seats += plan.seats_confirmed;
    st.event.version += 1;
    batch.events.push(st.event.clone());
}

/// Applies one chore to the event's state and the batch; returns the seats it moved (negative:
/// given back) and the booking's new state, if it changes.
fn settle_chore(
    st: &mut EventState,
    c: &engine::Chore,
    status: Option<BookingStatus>,
    w: &mut Writes,
) -> (i32, Option<BookingStatus>) {
    use BookingStatus::{Confirmed, Expired, Held, RefundPending};
    let transition = |from, to| store::Transition {
        booking_id: c.booking_id,
        from,
        to,
    };
    let facts = json!({
        "bookingId": c.booking_id,
        "requestId": c.request_id,
        "seats": c.seats,
        "cost": c.cost,
    });
    let refund = |w: &mut Writes, session: i64, reason: &str| {
        w.outbox.push(crate::payments::refund::job(
            &st.event,
            c.user_id,
            session,
            c.booking_id,
            c.amount,
            reason,
        ));
    };
    match (c.session_id, status) {
        // A payment that is not the one asked for (amount, currency, booking): the money back,
        // the booking as it was.
        (Some(session), _) if c.mismatch => {
            w.payments.push((session, "refunded"));
            refund(w, session, "payment_mismatch");
            (0, None)
        }
        // A hold ran out: its seats go back on sale.
        (None, Some(Held)) => {
            st.event.reserved_seats -= c.seats;
            st.type_seats(c.ticket_type_id, -c.seats, w);
            if st.capped() {
                if let Some(n) = st.held.by_user.get_mut(&c.user_id) {
                    *n -= c.seats;
                }
                if let Some(t) = c.ticket_type_id
                    && let Some(n) = st.held.by_type.get_mut(&(c.user_id, t))
                {
                    *n -= c.seats;
                }
            }
            w.transitions.push(transition(Held, Expired));
            w.outbox
                .push(note(&st.event, Notice::HoldExpired, c.user_id, facts));
            (-c.seats, Some(Expired))
        }
        // Paid in time.
        (Some(session), Some(Held)) => {
            w.transitions.push(transition(Held, Confirmed));
            w.payments.push((session, "confirmed"));
            w.outbox
                .push(note(&st.event, Notice::BookingPaid, c.user_id, facts));
            (0, Some(Confirmed))
        }
        // Paid after the hold ran out: the seats again if they are free, else the money back.
        (Some(session), Some(Expired)) => {
            let free = st.event.capacity - st.event.reserved_seats;
            let type_left = c
                .ticket_type_id
                .or(st.default_type())
                .and_then(|t| st.types.iter().find(|x| x.id == t))
                .map_or(i32::MAX, |t| t.quota.map_or(i32::MAX, |q| q - t.sold));
            let open = st.event.closed_at(Utc::now()).is_none();
            if open && free >= c.seats && type_left >= c.seats {
                st.event.reserved_seats += c.seats;
                st.type_seats(c.ticket_type_id, c.seats, w);
                w.transitions.push(transition(Expired, Confirmed));
                w.payments.push((session, "reacquired"));
                let mut facts = facts;
                facts["late"] = json!(true);
                w.outbox
                    .push(note(&st.event, Notice::BookingPaid, c.user_id, facts));
                metrics::counter!("payments_late_total", "result" => "reacquired").increment(1);
                (c.seats, Some(Confirmed))
            } else {
                w.transitions.push(transition(Expired, RefundPending));
                w.payments.push((session, "refunded"));
                refund(w, session, "late_payment");
                metrics::counter!("payments_late_total", "result" => "refunded").increment(1);
                (0, Some(RefundPending))
            }
        }
        // Paid for a booking that is paid already or gone: the money back.
        (Some(session), _) => {
            w.payments.push((session, "refunded"));
            refund(w, session, "duplicate_payment");
            metrics::counter!("payments_duplicate_total").increment(1);
            tracing::warn!(
                booking.id = c.booking_id,
                payment.session = session,
                "a second payment of a booking; refunding it"
            );
            (0, None)
        }
        // No longer held (paid or released meanwhile): nothing to do.
        (None, _) => (0, None),
    }
}

/// A rejection that is not stored (its event or its buyer does not exist).
pub fn unstored_rejection(r: &BookingRequest, reason: Reason) -> Outcome {
    Outcome::undecided(r, Status::Rejected, Some(reason))
}
