//! Tests of `TestDatabase`: one migrated database per test on a shared per-process server.

use std::time::Instant;

use cons_testdb::TestDatabase;
use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};

async fn current_database(url: &str) -> String {
    let mut conn = AsyncPgConnection::establish(url).await.unwrap();
    diesel::select(diesel::dsl::sql::<Text>("current_database()"))
        .get_result::<String>(&mut conn)
        .await
        .unwrap()
}

async fn ticket_count(db: &TestDatabase) -> i64 {
    let mut conn = db.pool().get().await.unwrap();
    diesel::select(diesel::dsl::sql::<BigInt>(
        "(SELECT count(*) FROM cons.tickets)",
    ))
    .get_result::<i64>(&mut conn)
    .await
    .unwrap()
}

#[tokio::test]
async fn each_test_gets_its_own_migrated_database() {
    let started = Instant::now();
    let a = TestDatabase::new().await;
    eprintln!("first TestDatabase::new took {:?}", started.elapsed());
    let started = Instant::now();
    let b = TestDatabase::new().await;
    eprintln!("second TestDatabase::new took {:?}", started.elapsed());

    assert_ne!(a.url(), b.url());
    assert_ne!(a.name(), b.name());
    assert_eq!(current_database(a.url()).await, a.name());
    assert_eq!(current_database(b.url()).await, b.name());
    assert_eq!(ticket_count(&a).await, 0);
    assert_eq!(ticket_count(&b).await, 0);
    assert_eq!(
        current_database(&a.cluster_url("postgres")).await,
        "postgres"
    );
    assert_eq!(a.cluster_url("postgres"), b.cluster_url("postgres"));
}

#[tokio::test]
async fn databases_are_isolated() {
    let a = TestDatabase::new().await;
    let b = TestDatabase::new().await;
    let mut conn = a.pool().get().await.unwrap();
    diesel::sql_query("CREATE TABLE public.only_in_a (id int)")
        .execute(&mut conn)
        .await
        .unwrap();
    let mut conn = b.pool().get().await.unwrap();
    assert!(
        diesel::sql_query("SELECT * FROM public.only_in_a")
            .execute(&mut conn)
            .await
            .is_err()
    );
}

/// Many tests starting at once share one server and one template.
#[test]
fn concurrent_first_use_sets_up_once() {
    let threads: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(async {
                        let db = TestDatabase::new().await;
                        assert_eq!(ticket_count(&db).await, 0);
                        db.cluster_url("postgres")
                    })
            })
        })
        .collect();
    let urls: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(
        urls.windows(2).all(|w| w[0] == w[1]),
        "more than one server: {urls:?}"
    );
}
