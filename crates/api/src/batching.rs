//! Ticket creation under load: create requests that arrive while others are being written
//! share one statement and one commit (`cons_store::tickets::create_batch`). A ticket still
//! commits with its history, outbox entries and key; what a batch cannot settle (a new
//! client, a taken key, a failed batch) goes through the single create. See
//! docs/decisions/0011-batched-ticket-creation.md.

use crate::wake::RelayWaker;
use cons_domain::NewTicket;
use cons_store::tickets::{self, CreateOutcome, CreateTicket, IdempotencyKey};
use cons_store::{Pool, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// One batch is written at a time as long as it is quick: requests arriving meanwhile
/// queue, and the next batch takes all of them, so under load batches grow by themselves
/// (measured: eight tickets per statement at the benchmark's maximum, where four batches
/// at once made three) while a lone request is written at once. A batch in flight for
/// longer than `PATIENCE` (a slow commit, a key's lock wait of up to `lock_timeout`) lets
/// the next one start beside it, up to `MAX_IN_FLIGHT`, so one slow batch delays the
/// others by `PATIENCE` at most.
const PATIENCE: Duration = Duration::from_millis(2);
pub const MAX_IN_FLIGHT: usize = 4;
/// The most requests in one statement (its arrays grow with it; beyond a few dozen the
/// per-ticket cost no longer falls).
const MAX_BATCH: usize = 64;
/// Requests waiting for a batch; beyond this, handlers wait to enqueue.
const QUEUE: usize = 1024;

/// One create request, owned so that it can wait in the queue.
#[derive(Debug)]
pub struct CreateJob {
    pub command: NewTicket,
    /// `service:<name>` or `client:<id>`.
    pub principal: String,
    pub idempotency: Option<IdempotencyKey>,
}

impl CreateJob {
    fn as_request(&self) -> CreateTicket<'_> {
        CreateTicket {
            command: &self.command,
            principal: &self.principal,
            idempotency: self.idempotency.clone(),
        }
    }
}

struct Queued {
    job: CreateJob,
    reply: oneshot::Sender<Result<CreateOutcome, StoreError>>,
}

/// Hands create requests to the batch writer.
#[derive(Clone)]
pub struct CreateBatcher {
    queue: mpsc::Sender<Queued>,
    pool: Pool,
    waker: RelayWaker,
}

impl CreateBatcher {
    /// Starts the batch writer, and the task that wakes the relay after its commits, on
    /// the current tokio runtime.
    pub fn start(pool: Pool) -> CreateBatcher {
        let waker = RelayWaker::start(pool.clone(), cons_store::wake::Channel::Outbox);
        let (queue, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(write_batches(pool.clone(), waker.clone(), receiver));
        CreateBatcher { queue, pool, waker }
    }

    /// Creates one ticket, in whichever batch is written next.
    pub async fn create(&self, job: CreateJob) -> Result<CreateOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        if let Err(refused) = self.queue.send(Queued { job, reply }).await {
            // The writer is gone (shutting down): write it here.
            return create_one(&self.pool, &self.waker, &refused.0.job).await;
        }
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::Unavailable(
                "the batch writer stopped before answering".into(),
            ))
        })
    }
}

async fn write_batches(pool: Pool, waker: RelayWaker, mut receiver: mpsc::Receiver<Queued>) {
    let first_in_line = Arc::new(Semaphore::new(1));
    let beside = Arc::new(Semaphore::new(MAX_IN_FLIGHT - 1));
    loop {
        let mut batch = Vec::new();
        if receiver.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        let waited = tokio::time::timeout(PATIENCE, first_in_line.clone().acquire_owned()).await;
        let permit = match waited {
            Ok(permit) => permit,
            Err(_slow) => tokio::select! {
                permit = first_in_line.clone().acquire_owned() => permit,
                permit = beside.clone().acquire_owned() => permit,
            },
        };
        let Ok(permit) = permit else {
            return;
        };
        // Everything that queued while the batch before was written.
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(queued) => batch.push(queued),
                Err(_) => break,
            }
        }
        let (pool, waker) = (pool.clone(), waker.clone());
        tokio::spawn(async move {
            settle(&pool, &waker, batch).await;
            drop(permit);
        });
    }
}

/// Writes one batch and answers each of its requests.
async fn settle(pool: &Pool, waker: &RelayWaker, batch: Vec<Queued>) {
    metrics::histogram!("ticket_create_batch_size").record(batch.len() as f64);
    if batch.len() == 1 {
        for queued in batch {
            let outcome = create_one(pool, waker, &queued.job).await;
            // A caller that went away (client disconnected) no longer listens.
            let _ = queued.reply.send(outcome);
        }
        return;
    }
    let written = match pool.get().await {
        Ok(mut connection) => {
            let requests: Vec<CreateTicket<'_>> =
                batch.iter().map(|queued| queued.job.as_request()).collect();
            tickets::create_batch(&mut connection, &requests).await
        }
        Err(error) => Err(error.into()),
    };
    let written = match written {
        Ok(written) => written,
        // Without a database, the single create cannot do better.
        Err(error) if error.is_unavailable() => {
            for queued in batch {
                let _ = queued
                    .reply
                    .send(Err(StoreError::Unavailable(error.to_string())));
            }
            return;
        }
        Err(error) => {
            // One request can fail a whole batch (a key in flight elsewhere, a value the
            // database refuses): each then gets the answer it would have had alone.
            tracing::warn!(%error, size = batch.len(), "a batch of creates failed; creating one by one");
            vec![None; batch.len()]
        }
    };
    if written.iter().any(Option::is_some) {
        waker.wake();
    }
    let mut rest = Vec::new();
    for (queued, created) in batch.into_iter().zip(written) {
        match created {
            Some(created) => {
                count_created(&created);
                let _ = queued.reply.send(Ok(CreateOutcome::Created(created)));
            }
            None => rest.push(queued),
        }
    }
    // Each on its own connection and at once: a new client's first ticket must not wait
    // behind another's lock wait.
    let pending: Vec<_> = rest
        .into_iter()
        .map(|queued| async move {
            let outcome = create_one(pool, waker, &queued.job).await;
            let _ = queued.reply.send(outcome);
        })
        .collect();
    futures_util::future::join_all(pending).await;
}

/// The single create, on a connection of its own.
async fn create_one(
    pool: &Pool,
    waker: &RelayWaker,
    job: &CreateJob,
) -> Result<CreateOutcome, StoreError> {
    let mut connection = pool.get().await?;
    let outcome = tickets::create(&mut connection, &job.as_request()).await?;
    if let CreateOutcome::Created(created) = &outcome {
        waker.wake();
        count_created(created);
    }
    Ok(outcome)
}

fn count_created(created: &tickets::CreatedTicket) {
    metrics::counter!("tickets_created_total",
        "consultation_type" => created.consultation_type.as_str(), "source" => created.source.as_str())
    .increment(1);
}
