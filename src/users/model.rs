//! `users` and `refresh_tokens` rows and their queries. Functions take the connection, so the
//! caller decides the transaction.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use uuid::Uuid;

use crate::db::schema::{refresh_tokens, users};

/// A `users` row. Deliberately not `Serialize`: the hash must never reach a response; use
/// [`PublicUser`].
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct User {
    /// Id.
    pub id: i64,
    /// Unique (case-insensitively) login name.
    pub username: String,
    /// Display name.
    pub name: String,
    /// Unique (case-insensitively) email.
    pub email: String,
    /// bcrypt hash.
    pub password_hash: String,
    /// `guest`, `host` or `admin`.
    pub role: String,
    /// Registration time.
    pub created_at: DateTime<Utc>,
    /// When the email address was confirmed; `None` until then (no hosting, no email).
    pub email_verified_at: Option<DateTime<Utc>>,
}

/// What the API shows of a user to that user (and to admins).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicUser {
    /// Id.
    pub id: i64,
    /// Login name.
    pub username: String,
    /// Display name.
    pub name: String,
    /// Email.
    pub email: String,
    /// Role.
    pub role: String,
    /// Registration time.
    pub created_at: DateTime<Utc>,
    /// Whether the email address is confirmed.
    pub email_verified: bool,
}

impl From<User> for PublicUser {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            username: u.username,
            name: u.name,
            email: u.email,
            role: u.role,
            created_at: u.created_at,
            email_verified: u.email_verified_at.is_some(),
        }
    }
}

/// A user to insert.
#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    /// Login name.
    pub username: &'a str,
    /// Display name.
    pub name: &'a str,
    /// Email.
    pub email: &'a str,
    /// bcrypt hash.
    pub password_hash: &'a str,
    /// Role.
    pub role: &'a str,
    /// Verified at creation (an operator's `users create`), or `None` (self-registration).
    pub email_verified_at: Option<DateTime<Utc>>,
}

/// Which unique rule a registration broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// `users_email_lower_key`.
    Email,
    /// `users_username_lower_key`.
    Username,
}

impl NewUser<'_> {
    /// Inserts the user. A taken username or email (also under a concurrent registration) is
    /// returned as a value, not an error, and without failing the caller's transaction
    /// (`ON CONFLICT DO NOTHING`, then which rule it was).
    pub async fn insert(&self, conn: &mut AsyncPgConnection) -> QueryResult<Result<User, Taken>> {
        if username_held(conn, self.username).await? {
            return Ok(Err(Taken::Username));
        }
        let inserted = diesel::insert_into(users::table)
            .values(self)
            .on_conflict_do_nothing()
            .returning(User::as_returning())
            .get_result(conn)
            .await
            .optional()?;
        if let Some(user) = inserted {
            return Ok(Ok(user));
        }
        let username_taken: bool = diesel::select(diesel::dsl::exists(
            users::table.filter(lower(users::username).eq(self.username.to_lowercase())),
        ))
        .get_result(conn)
        .await?;
        Ok(Err(if username_taken {
            Taken::Username
        } else {
            Taken::Email
        }))
    }
}

pub use crate::db::lower;

/// How long a registration for a taken address holds its username (as long as the
/// confirmation link of an account created for a new address lasts).
pub const USERNAME_HOLD_HOURS: i64 = 48;

/// Whether `username` is held by a registration for a taken address.
pub async fn username_held(conn: &mut AsyncPgConnection, username: &str) -> QueryResult<bool> {
    use crate::db::schema::username_holds;
    diesel::select(diesel::dsl::exists(
        username_holds::table
            .filter(username_holds::username_lower.eq(username.to_lowercase()))
            .filter(username_holds::held_until.gt(diesel::dsl::now)),
    ))
    .get_result(conn)
    .await
}

/// Holds `username` for [`USERNAME_HOLD_HOURS`] (a registration for a taken address: answered
/// as if it had created the account, so the username must look taken afterwards too).
pub async fn hold_username(conn: &mut AsyncPgConnection, username: &str) -> QueryResult<()> {
    use crate::db::schema::username_holds;
    let until = chrono::Utc::now() + chrono::Duration::hours(USERNAME_HOLD_HOURS);
    diesel::insert_into(username_holds::table)
        .values((
            username_holds::username_lower.eq(username.to_lowercase()),
            username_holds::held_until.eq(until),
        ))
        .on_conflict(username_holds::username_lower)
        .do_update()
        .set(username_holds::held_until.eq(until))
        .execute(conn)
        .await
        .map(drop)
}

/// Forgets holds that have run out (the reconciliation pass); how many.
pub async fn drop_expired_username_holds(conn: &mut AsyncPgConnection) -> QueryResult<usize> {
    use crate::db::schema::username_holds;
    diesel::delete(username_holds::table.filter(username_holds::held_until.le(diesel::dsl::now)))
        .execute(conn)
        .await
}

impl User {
    /// Replaces the password hash.
    pub async fn set_password(
        conn: &mut AsyncPgConnection,
        id: i64,
        hash: &str,
    ) -> QueryResult<bool> {
        let n = diesel::update(users::table.find(id))
            .set((
                users::password_hash.eq(hash),
                users::updated_at.eq(diesel::dsl::now),
            ))
            .execute(conn)
            .await?;
        Ok(n == 1)
    }

    /// Marks `id`'s address verified if it is still `email` (case-insensitively) and not yet
    /// verified; whether it changed anything.
    pub async fn mark_verified(
        conn: &mut AsyncPgConnection,
        id: i64,
        email: &str,
    ) -> QueryResult<bool> {
        let n = diesel::update(
            users::table
                .find(id)
                .filter(lower(users::email).eq(email.to_lowercase()))
                .filter(users::email_verified_at.is_null()),
        )
        .set(users::email_verified_at.eq(diesel::dsl::now))
        .execute(conn)
        .await?;
        Ok(n == 1)
    }

    /// The user with `id`, if any.
    pub async fn find(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<Option<User>> {
        users::table
            .find(id)
            .select(User::as_select())
            .first(conn)
            .await
            .optional()
    }

    /// Users by id (after `after`), optionally whose username or name contains `q`
    /// (case-insensitive): the admin's user list.
    pub async fn page(
        conn: &mut AsyncPgConnection,
        q: Option<&str>,
        after: Option<i64>,
        limit: i64,
    ) -> QueryResult<Vec<User>> {
        let mut query = users::table
            .select(User::as_select())
            .order(users::id.asc())
            .limit(limit)
            .into_boxed();
        if let Some(after) = after {
            query = query.filter(users::id.gt(after));
        }
        if let Some(q) = q {
            let like = format!(
                "%{}%",
                q.replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            );
            query = query.filter(
                users::username
                    .ilike(like.clone())
                    .or(users::name.ilike(like)),
            );
        }
        query.load(conn).await
    }

    /// The user whose email or username equals `login`, case-insensitively (uses the
    /// `lower(...)` unique indexes).
    pub async fn find_by_login(
        conn: &mut AsyncPgConnection,
        login: &str,
    ) -> QueryResult<Option<User>> {
        let needle = login.trim().to_lowercase();
        let query = users::table.select(User::as_select());
        if needle.contains('@') {
            query
                .filter(lower(users::email).eq(needle))
                .first(conn)
                .await
                .optional()
        } else {
            query
                .filter(lower(users::username).eq(needle))
                .first(conn)
                .await
                .optional()
        }
    }

    /// Sets the role; returns the updated user.
    pub async fn set_role(
        conn: &mut AsyncPgConnection,
        id: i64,
        role: &str,
    ) -> QueryResult<Option<User>> {
        diesel::update(users::table.find(id))
            .set(users::role.eq(role))
            .returning(User::as_returning())
            .get_result(conn)
            .await
            .optional()
    }

    /// Every admin's id, their rows locked until the transaction ends (role changes that
    /// could leave no admin are serialised on them).
    pub async fn lock_admins(conn: &mut AsyncPgConnection) -> QueryResult<Vec<i64>> {
        users::table
            .filter(users::role.eq("admin"))
            .order(users::id.asc())
            .select(users::id)
            .for_update()
            .load(conn)
            .await
    }

    /// How many admins exist.
    pub async fn count_admins(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
        users::table
            .filter(users::role.eq("admin"))
            .count()
            .get_result(conn)
            .await
    }
}

/// A stored refresh token (its hash, never the token).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = refresh_tokens)]
pub struct RefreshToken {
    /// Token id (the JWT's `jti`).
    pub id: Uuid,
    /// Owner.
    pub user_id: i64,
    /// One login's chain of rotated tokens.
    pub family_id: Uuid,
    /// SHA-256 of the token.
    pub token_hash: Vec<u8>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// Set when it was exchanged for a new one.
    pub rotated_at: Option<DateTime<Utc>>,
    /// Set when it was revoked (logout, reuse detection).
    pub revoked_at: Option<DateTime<Utc>>,
}

impl RefreshToken {
    /// Neither rotated nor revoked, and not expired at `now`: it may still be used.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.rotated_at.is_none() && self.revoked_at.is_none() && self.expires_at > now
    }

    /// Stores a new token.
    pub async fn insert(&self, conn: &mut AsyncPgConnection) -> QueryResult<()> {
        diesel::insert_into(refresh_tokens::table)
            .values(self)
            .execute(conn)
            .await
            .map(drop)
    }

    /// The stored token with this hash.
    pub async fn find_by_hash(
        conn: &mut AsyncPgConnection,
        hash: &[u8],
    ) -> QueryResult<Option<RefreshToken>> {
        refresh_tokens::table
            .filter(refresh_tokens::token_hash.eq(hash))
            .select(RefreshToken::as_select())
            .first(conn)
            .await
            .optional()
    }

    /// Marks the token rotated if it is still live. `false` means someone else used it first
    /// (a concurrent refresh with the same token: treated as reuse).
    pub async fn mark_rotated(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<bool> {
        let n = diesel::update(
            refresh_tokens::table
                .find(id)
                .filter(refresh_tokens::rotated_at.is_null())
                .filter(refresh_tokens::revoked_at.is_null()),
        )
        .set(refresh_tokens::rotated_at.eq(diesel::dsl::now))
        .execute(conn)
        .await?;
        Ok(n == 1)
    }

    /// Revokes every live token of a family (theft detection).
    pub async fn revoke_family(conn: &mut AsyncPgConnection, family: Uuid) -> QueryResult<usize> {
        diesel::update(
            refresh_tokens::table
                .filter(refresh_tokens::family_id.eq(family))
                .filter(refresh_tokens::revoked_at.is_null()),
        )
        .set(refresh_tokens::revoked_at.eq(diesel::dsl::now))
        .execute(conn)
        .await
    }

    /// Revokes one token of `user`.
    pub async fn revoke(
        conn: &mut AsyncPgConnection,
        user: i64,
        hash: &[u8],
    ) -> QueryResult<usize> {
        diesel::update(
            refresh_tokens::table
                .filter(refresh_tokens::token_hash.eq(hash))
                .filter(refresh_tokens::user_id.eq(user))
                .filter(refresh_tokens::revoked_at.is_null()),
        )
        .set(refresh_tokens::revoked_at.eq(diesel::dsl::now))
        .execute(conn)
        .await
    }

    /// Revokes every token of `user` (logout everywhere).
    pub async fn revoke_all(conn: &mut AsyncPgConnection, user: i64) -> QueryResult<usize> {
        diesel::update(
            refresh_tokens::table
                .filter(refresh_tokens::user_id.eq(user))
                .filter(refresh_tokens::revoked_at.is_null()),
        )
        .set(refresh_tokens::revoked_at.eq(diesel::dsl::now))
        .execute(conn)
        .await
    }
}
