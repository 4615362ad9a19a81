//! Tests of `Cluster`: start, connect, crash, restart, several at once, clean-up.

use std::path::PathBuf;
use std::time::Instant;

use cons_testdb::{Cluster, ClusterOptions};
use diesel::sql_types::Integer;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};

async fn select_one(url: &str) -> Result<i32, String> {
    let mut conn = AsyncPgConnection::establish(url)
        .await
        .map_err(|e| e.to_string())?;
    diesel::select(diesel::dsl::sql::<Integer>("1"))
        .get_result::<i32>(&mut conn)
        .await
        .map_err(|e| e.to_string())
}

async fn count_rows(url: &str) -> i64 {
    let mut conn = AsyncPgConnection::establish(url).await.unwrap();
    diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
        "(SELECT count(*) FROM kept)",
    ))
    .get_result::<i64>(&mut conn)
    .await
    .unwrap()
}

async fn execute(url: &str, sql: &str) {
    let mut conn = AsyncPgConnection::establish(url).await.unwrap();
    diesel::sql_query(sql).execute(&mut conn).await.unwrap();
}

fn start(opts: ClusterOptions) -> Cluster {
    let started = Instant::now();
    let cluster = Cluster::start(opts).unwrap();
    eprintln!("Cluster::start took {:?}", started.elapsed());
    cluster
}

#[tokio::test]
async fn starts_survives_a_kill_and_restarts() {
    // durable: the test checks that a commit acknowledged before the crash is kept
    let mut cluster = start(ClusterOptions {
        durable: true,
        ..ClusterOptions::default()
    });
    let url = cluster.url("postgres");
    assert_eq!(select_one(&url).await.unwrap(), 1);
    execute(&url, "CREATE TABLE kept (id int)").await;
    execute(&url, "INSERT INTO kept VALUES (1)").await;

    let port = cluster.port();
    let old_pid = cluster.pid();
    cluster.kill();
    assert!(
        select_one(&url).await.is_err(),
        "server still answers after kill"
    );
    assert!(
        !PathBuf::from(format!("/proc/{old_pid}")).exists(),
        "killed postmaster still exists"
    );

    let restarted = Instant::now();
    cluster.restart().unwrap();
    eprintln!("Cluster::restart after kill took {:?}", restarted.elapsed());
    assert_eq!(cluster.port(), port);
    assert_ne!(cluster.pid(), old_pid);
    assert_eq!(select_one(&url).await.unwrap(), 1);
    assert_eq!(count_rows(&url).await, 1);

    // restart of a running server: fast shutdown, then start
    cluster.restart().unwrap();
    assert_eq!(select_one(&url).await.unwrap(), 1);
}

#[tokio::test]
async fn two_clusters_run_at_once() {
    let a = start(ClusterOptions::default());
    let b = start(ClusterOptions::default());
    assert_ne!(a.port(), b.port());
    assert_ne!(a.pid(), b.pid());
    assert_ne!(a.data_dir(), b.data_dir());
    assert_eq!(select_one(&a.url("postgres")).await.unwrap(), 1);
    assert_eq!(select_one(&b.url("postgres")).await.unwrap(), 1);

    let b_url = b.url("postgres");
    let b_pid = b.pid();
    let b_data = b.data_dir().to_path_buf();
    b.stop();
    assert!(select_one(&b_url).await.is_err());
    assert!(!PathBuf::from(format!("/proc/{b_pid}")).exists());
    assert!(!b_data.exists(), "temp data dir left behind");
    assert_eq!(select_one(&a.url("postgres")).await.unwrap(), 1);
}

#[tokio::test]
async fn killed_and_dropped_cluster_leaves_nothing_behind() {
    let mut cluster = start(ClusterOptions::default());
    let work_dir = cluster.data_dir().parent().unwrap().to_path_buf();
    cluster.kill();
    drop(cluster);
    assert!(!work_dir.exists(), "temp dir left behind");
}

#[tokio::test]
async fn keeps_a_caller_provided_data_dir() {
    let dir = std::env::temp_dir().join(format!("cons-testdb-keep-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = ClusterOptions {
        durable: true,
        data_dir: Some(dir.join("pgdata")),
        ..ClusterOptions::default()
    };

    let cluster = start(opts.clone());
    execute(&cluster.url("postgres"), "CREATE TABLE kept (id int)").await;
    execute(&cluster.url("postgres"), "INSERT INTO kept VALUES (1), (2)").await;
    cluster.stop();
    assert!(dir.join("pgdata/PG_VERSION").is_file());

    // second start: no initdb, same data
    let cluster = start(opts);
    assert_eq!(count_rows(&cluster.url("postgres")).await, 2);
    cluster.stop();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn removes_leftovers_of_dead_processes() {
    // A pid that surely belonged to a process that has exited.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = child.id();
    child.wait().unwrap();
    let leftover = std::env::temp_dir().join(format!("cons-pg-{dead_pid}-deadbeef"));
    std::fs::create_dir_all(leftover.join("data")).unwrap();
    let alive = std::env::temp_dir().join(format!("cons-pg-{}-cafebabe", std::process::id()));
    std::fs::create_dir_all(&alive).unwrap();

    let cluster = start(ClusterOptions::default());
    assert!(!leftover.exists(), "leftover of a dead process was kept");
    assert!(alive.exists(), "directory of a live process was removed");
    drop(cluster);
    std::fs::remove_dir_all(&alive).unwrap();
}

#[tokio::test]
async fn server_outlives_the_thread_that_started_it() {
    // Linux sends the parent-death signal when the forking *thread* exits; the harness forks
    // from a process-lifetime thread so that this does not shut the server down.
    let cluster = std::thread::spawn(|| start(ClusterOptions::default()))
        .join()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(select_one(&cluster.url("postgres")).await.unwrap(), 1);
}
