//! `consultations_changed_since`: every change read exactly once per pass, in
//! (`ДатаИзменения`, `Ref_Key`) order, although `ДатаИзменения` has one-second resolution
//! and 1C orders references differently from us.

use crate::{Setup, new_consultation, setup, utc};
use chrono::{DateTime, Utc};
use cons_onec::{Consultation, OnecClient};
use std::collections::HashSet;
use uuid::Uuid;

/// Reads everything after `start` in pages of `top`, checking order and progress.
async fn drain(client: &OnecClient, start: (DateTime<Utc>, Uuid), top: u32) -> Vec<Consultation> {
    let mut watermark = start;
    let mut all: Vec<Consultation> = Vec::new();
    for _ in 0..100 {
        let page = client
            .consultations_changed_since(watermark, top)
            .await
            .unwrap();
        assert!(page.len() <= top as usize);
        if page.is_empty() {
            return all;
        }
        for consultation in &page {
            let position = consultation.watermark().unwrap();
            assert!(position > watermark, "a page went backwards");
            watermark = position;
        }
        all.extend(page);
    }
    panic!("paging did not finish");
}

/// `count` consultations of distinct subscribers (no daily limit), changed at the
/// simulator's current second.
async fn create(setup: &Setup, count: usize) -> Vec<Uuid> {
    let mut keys = Vec::new();
    for _ in 0..count {
        let new = new_consultation(Uuid::now_v7(), "2026-11-27T06:00:00Z");
        keys.push(
            setup
                .client
                .create_consultation(&new)
                .await
                .unwrap()
                .ref_key,
        );
    }
    keys
}

fn once_each(read: &[Consultation], expected: &[Uuid]) {
    let keys: Vec<Uuid> = read.iter().map(|c| c.ref_key).collect();
    let unique: HashSet<Uuid> = keys.iter().copied().collect();
    assert_eq!(unique.len(), keys.len(), "read twice");
    assert_eq!(unique, expected.iter().copied().collect::<HashSet<_>>());
}

#[tokio::test]
async fn pages_across_equal_change_dates_read_everything_once() {
    let setup = setup();
    // 7 in one second, 2 in the next, 1 alone, then 5 in one second again
    let mut expected = create(&setup, 7).await;
    setup.sim.advance_clock(chrono::Duration::seconds(1));
    expected.extend(create(&setup, 2).await);
    setup.sim.advance_clock(chrono::Duration::seconds(1));
    expected.extend(create(&setup, 1).await);
    setup.sim.advance_clock(chrono::Duration::seconds(7));
    expected.extend(create(&setup, 5).await);

    let start = (utc("2026-11-26T00:00:00Z"), Uuid::nil());
    for top in [1, 2, 3, 4, 5, 7, 8, 100] {
        let read = drain(&setup.client, start, top).await;
        once_each(&read, &expected);
    }
    // a watermark inside the first second continues right after it
    let all = drain(&setup.client, start, 100).await;
    let rest = drain(&setup.client, all[3].watermark().unwrap(), 2).await;
    once_each(
        &rest,
        &all[4..].iter().map(|c| c.ref_key).collect::<Vec<_>>(),
    );
    // starting at a second with nil includes that whole second
    let from_first = drain(
        &setup.client,
        (all[0].date_changed.unwrap(), Uuid::nil()),
        3,
    )
    .await;
    assert_eq!(from_first.len(), expected.len());
    assert_eq!(setup.sim.unimplemented_calls(), 0);
}

#[tokio::test]
async fn changes_after_a_pass_come_back_in_the_next() {
    let setup = setup();
    let first = create(&setup, 3).await;
    let start = (utc("2026-11-26T00:00:00Z"), Uuid::nil());
    let read = drain(&setup.client, start, 2).await;
    once_each(&read, &first);
    let watermark = read.last().unwrap().watermark().unwrap();
    assert!(
        setup
            .client
            .consultations_changed_since(watermark, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // an operator closes one a minute later; a new one arrives too
    setup.sim.advance_clock(chrono::Duration::minutes(1));
    setup.sim.close_consultation(first[1]).unwrap();
    let second = create(&setup, 1).await;
    let next = setup
        .client
        .consultations_changed_since(watermark, 10)
        .await
        .unwrap();
    once_each(&next, &[first[1], second[0]]);
    let closed = next.iter().find(|c| c.ref_key == first[1]).unwrap();
    assert!(closed.is_finished());
    assert_eq!(closed.date_changed, Some(utc("2026-11-26T05:16:02Z")));
    assert_eq!(closed.data_version.counter(), Some(1));
    assert!(
        setup
            .client
            .consultations_changed_since(watermark, 0)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(setup.sim.unimplemented_calls(), 0);
}
