//! `consctl ticket show ID`: the ticket, its history and its outbox entries.

use anyhow::Context;
use clap::Subcommand;
use cons_store::outbox::{self, ListFilter};
use cons_store::settings::DatabaseConfig;
use cons_store::tickets;
use uuid::Uuid;

#[derive(Debug, Subcommand)]
pub enum TicketCommand {
    /// The ticket, its history and its outbox entries.
    Show {
        id: Uuid,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(command: TicketCommand, database: &DatabaseConfig) -> anyhow::Result<()> {
    let TicketCommand::Show { id, json } = command;
    let pool = cons_store::pool::build(&database.url, &database.pool)?;
    let mut connection = pool
        .get()
        .await
        .context("could not connect to the database")?;
    let view = tickets::get(&mut connection, id)
        .await?
        .with_context(|| format!("no ticket {id}"))?;
    let history = tickets::history(&mut connection, id).await?;
    let entries = outbox::list(
        &mut connection,
        &ListFilter {
            cons_id: Some(id),
            limit: 10_000,
            ..ListFilter::default()
        },
    )
    .await?;
    let t = &view.ticket;
    if json {
        let document = serde_json::json!({
            "ticket": {
                "cons_id": t.cons_id, "client_id": t.client_id, "status": t.status,
                "consultation_type": t.consultation_type, "source": t.source, "lang": t.lang,
                "created_at": t.created_at, "updated_at": t.updated_at,
                "chatwoot": {"conversation_id": t.chatwoot_conversation_id, "contact_id": view.chatwoot_contact_id},
                "onec": {"ref_key": t.onec_ref_key, "number": t.onec_number},
                "sync": {"chatwoot": t.sync_chatwoot, "onec": t.sync_onec},
            },
            "history": history.iter().map(|h| serde_json::json!({
                "at": h.at, "field": h.field, "old": h.old_value, "new": h.new_value, "source": h.source,
            })).collect::<Vec<_>>(),
            "outbox": entries,
        });
        println!("{}", serde_json::to_string_pretty(&document)?);
        return Ok(());
    }
    println!(
        "ticket {}  ({}, {}, from {})",
        t.cons_id, t.consultation_type, t.status, t.source
    );
    println!(
        "  client {}  created {}  updated {}",
        t.client_id,
        t.created_at.to_rfc3339(),
        t.updated_at.to_rfc3339()
    );
    let show = |value: Option<String>| value.unwrap_or_else(|| "-".into());
    println!(
        "  chatwoot: conversation {} contact {}  [{}]",
        show(t.chatwoot_conversation_id.map(|v| v.to_string())),
        show(view.chatwoot_contact_id.map(|v| v.to_string())),
        t.sync_chatwoot
    );
    println!(
        "  1C: ref_key {} number {}  [{}]",
        show(t.onec_ref_key.map(|v| v.to_string())),
        show(t.onec_number.clone()),
        t.sync_onec
    );
    println!("\nhistory:");
    for h in &history {
        println!(
            "  {}  {:<26} {} → {}  ({})",
            h.at.to_rfc3339(),
            h.field,
            h.old_value.as_deref().unwrap_or("∅"),
            h.new_value.as_deref().unwrap_or("∅"),
            h.source
        );
    }
    println!("\noutbox:");
    crate::outbox::print_table(&entries);
    Ok(())
}
