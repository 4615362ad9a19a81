//! Store tests against a real PostgreSQL: one fresh database per test, cloned from the
//! migrated template by `cons_testdb`.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on anything unexpected"
)]

mod identities;
mod schema;
mod tickets;

use cons_domain::{
    ClientRef, Comment, ConsultationType, Email, Inn, Lang, NewClient, NewTicket, PersonName,
    PhoneNumber, Source, TicketDraft,
};

/// A valid accounting ticket for a client known by phone `phone`.
pub fn ticket_for(phone: &str) -> NewTicket {
    NewTicket {
        client: ClientRef::Match(NewClient {
            name: PersonName::parse("Dilnoza Karimova").unwrap(),
            phone_number: PhoneNumber::parse(phone).unwrap(),
            email: None,
            org_inn: None,
            code_abonent: None,
            company_name: None,
        }),
        ticket: TicketDraft {
            consultation_type: ConsultationType::Accounting,
            comment: Some(Comment::parse("Как закрыть месяц?").unwrap()),
            topic: None,
            lang: Lang::Ru,
            scheduled_at: None,
            importance: None,
            source: Source::Site,
        },
    }
}

pub fn with_email(mut ticket: NewTicket, email: &str) -> NewTicket {
    if let ClientRef::Match(client) = &mut ticket.client {
        client.email = Some(Email::parse(email).unwrap());
    }
    ticket
}

pub fn with_inn(mut ticket: NewTicket, inn: &str) -> NewTicket {
    if let ClientRef::Match(client) = &mut ticket.client {
        client.org_inn = Some(Inn::parse(inn).unwrap());
    }
    ticket
}
