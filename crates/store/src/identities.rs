//! Client logins: binds an external identity (an OIDC issuer and subject, or a Telegram
//! user) to a client. The same identity always logs in as the same client; a new identity
//! gets a new client made from its profile, never one found by phone or e-mail (whoever
//! controls an identity provider account must not take over a client that shares its
//! e-mail).

use crate::StoreError;
use crate::pool::PooledConnection;
use cons_domain::{Email, PersonName, PhoneNumber};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{Bool, Nullable, Text, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

/// Who logged in, as the identity provider names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The OIDC issuer exactly as configured, or `telegram`.
    pub issuer: String,
    /// The OIDC `sub`, or the Telegram user id.
    pub subject: String,
}

/// What a new client is made of: the identity provider's (verified) claims.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: PersonName,
    pub email: Option<Email>,
    pub phone_number: Option<PhoneNumber>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoggedIn {
    pub client_id: Uuid,
    /// The identity was new, and so is its client.
    pub new_client: bool,
}

/// One statement: find the identity's client, or claim the identity for a new client id
/// and create that client. The identity's foreign key is deferred to the commit, so the
/// client is inserted only when the claim won; a phone or e-mail another client already
/// has is left out of the new client rather than shared (both are unique).
const LOG_IN_SQL: &str = r#"
WITH known AS (
    SELECT client_id FROM cons.client_identities WHERE issuer = $1 AND subject = $2
), claimed AS (
    INSERT INTO cons.client_identities (issuer, subject, client_id)
    SELECT $1, $2, $3 WHERE NOT EXISTS (SELECT 1 FROM known)
    ON CONFLICT DO NOTHING
    RETURNING client_id
), created AS (
    INSERT INTO cons.clients (client_id, name, email, phone_number)
    SELECT client_id, $4,
           (SELECT $5::text WHERE NOT EXISTS (SELECT 1 FROM cons.clients WHERE email = $5)),
           (SELECT $6::text WHERE NOT EXISTS (SELECT 1 FROM cons.clients WHERE phone_number = $6))
    FROM claimed
)
SELECT client_id, false AS new_client FROM known
UNION ALL
SELECT client_id, true FROM claimed
"#;

#[derive(diesel::QueryableByName)]
struct Row {
    #[diesel(sql_type = SqlUuid)]
    client_id: Uuid,
    #[diesel(sql_type = Bool)]
    new_client: bool,
}

/// A lost race (a concurrent first login of the same identity, or another client taking
/// the same phone or e-mail at the same moment) is settled by one more run, which sees
/// the winner's committed row; the bound only guards against a bug.
const ATTEMPTS: usize = 3;

/// The client this identity logs in as, created on its first login.
pub async fn log_in(
    connection: &mut PooledConnection,
    identity: &Identity,
    profile: &Profile,
) -> Result<LoggedIn, StoreError> {
    for _ in 0..ATTEMPTS {
        let result = crate::cached::Cached(
            diesel::sql_query(LOG_IN_SQL)
                .bind::<Text, _>(&identity.issuer)
                .bind::<Text, _>(&identity.subject)
                .bind::<SqlUuid, _>(Uuid::now_v7())
                .bind::<Text, _>(profile.name.as_str())
                .bind::<Nullable<Text>, _>(profile.email.as_ref().map(Email::as_str))
                .bind::<Nullable<Text>, _>(profile.phone_number.as_ref().map(PhoneNumber::as_str)),
        )
        .get_result::<Row>(connection)
        .await;
        match result {
            Ok(row) => {
                return Ok(LoggedIn {
                    client_id: row.client_id,
                    new_client: row.new_client,
                });
            }
            Err(DieselError::NotFound) => {
                tracing::debug!("lost the race for a first login; running it again");
            }
            Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                tracing::debug!("a new client's phone or e-mail was taken meanwhile; again");
            }
            Err(error) => return Err(error.into()),
        }
    }
    Err(StoreError::Query(DieselError::RollbackTransaction))
}
