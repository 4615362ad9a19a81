//! Client logins: one identity, one client, however often and however concurrently it
//! logs in; a new identity never takes over a client by phone or e-mail.

use crate::tickets::{count, wide_pool};
use crate::{ticket_for, with_email};
use cons_domain::{Email, PersonName, PhoneNumber};
use cons_store::identities::{self, Identity, LoggedIn, Profile};
use cons_store::{Pool, tickets};
use cons_testdb::TestDatabase;
use std::time::Duration;

fn identity(subject: &str) -> Identity {
    Identity {
        issuer: "https://id.example.uz".into(),
        subject: subject.into(),
    }
}

fn profile(email: Option<&str>, phone: Option<&str>) -> Profile {
    Profile {
        name: PersonName::parse("Dilnoza Karimova").unwrap(),
        email: email.map(|e| Email::parse(e).unwrap()),
        phone_number: phone.map(|p| PhoneNumber::parse(p).unwrap()),
    }
}

async fn log_in(pool: &Pool, identity: &Identity, profile: &Profile) -> LoggedIn {
    let mut connection = pool.get().await.unwrap();
    identities::log_in(&mut connection, identity, profile)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_same_identity_always_logs_in_as_the_same_client() {
    let db = TestDatabase::new().await;
    let first = log_in(
        db.pool(),
        &identity("alice"),
        &profile(Some("a@example.uz"), Some("+998901234567")),
    )
    .await;
    assert!(first.new_client);
    let again = log_in(db.pool(), &identity("alice"), &profile(None, None)).await;
    assert_eq!(again.client_id, first.client_id);
    assert!(!again.new_client);

    let telegram = Identity {
        issuer: "telegram".into(),
        subject: "alice".into(),
    };
    let other = log_in(db.pool(), &telegram, &profile(None, None)).await;
    assert_ne!(
        other.client_id, first.client_id,
        "the issuer is part of the key"
    );
    assert_eq!(
        count(db.pool(), "SELECT count(*) AS n FROM cons.clients").await,
        2
    );
}

#[tokio::test]
async fn a_new_identity_gets_a_new_client_even_when_its_phone_and_email_are_taken() {
    let db = TestDatabase::new().await;
    let mut connection = db.pool().get().await.unwrap();
    // A client the call centre created, with this phone and e-mail.
    let command = with_email(ticket_for("+998901234567"), "d.karimova@example.uz");
    let existing = match tickets::create(
        &mut connection,
        &tickets::CreateTicket {
            command: &command,
            principal: "service:call-centre",
            idempotency: None,
        },
    )
    .await
    .unwrap()
    {
        tickets::CreateOutcome::Created(created) => created.client_id,
        other => panic!("{other:?}"),
    };
    drop(connection);

    let login = log_in(
        db.pool(),
        &identity("mallory"),
        &profile(Some("d.karimova@example.uz"), Some("+998901234567")),
    )
    .await;
    assert!(login.new_client);
    assert_ne!(login.client_id, existing);
    assert_eq!(
        count(
            db.pool(),
            &format!(
                "SELECT count(*) AS n FROM cons.clients WHERE client_id = '{}' \
                 AND email IS NULL AND phone_number IS NULL",
                login.client_id
            )
        )
        .await,
        1,
        "the taken phone and e-mail stay with their client"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_logins_of_one_identity_make_one_client_and_no_orphan() {
    let db = TestDatabase::new().await;
    let pool = wide_pool(&db, Duration::from_secs(5));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                log_in(
                    &pool,
                    &identity("bob"),
                    &profile(Some("bob@example.uz"), None),
                )
                .await
            })
        })
        .collect();
    let mut logins = Vec::new();
    for task in tasks {
        logins.push(task.await.unwrap());
    }
    assert!(logins.iter().all(|l| l.client_id == logins[0].client_id));
    assert_eq!(logins.iter().filter(|l| l.new_client).count(), 1);
    assert_eq!(
        count(&pool, "SELECT count(*) AS n FROM cons.clients").await,
        1
    );
    assert_eq!(
        count(&pool, "SELECT count(*) AS n FROM cons.client_identities").await,
        1
    );
}
