//! Diesel table definitions, written by hand to match `migrations/` (a schema test checks
//! that every column named here exists with this type).

diesel::table! {
    cons.clients (client_id) {
        client_id -> Uuid,
        name -> Text,
        phone_number -> Nullable<Text>,
        email -> Nullable<Text>,
        org_inn -> Nullable<Text>,
        code_abonent -> Nullable<Text>,
        company_name -> Nullable<Text>,
        chatwoot_contact_id -> Nullable<Int8>,
        onec_counterparty_key -> Nullable<Uuid>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    cons.tickets (cons_id) {
        cons_id -> Uuid,
        client_id -> Uuid,
        status -> Text,
        consultation_type -> Text,
        source -> Text,
        lang -> Text,
        topic -> Nullable<Text>,
        comment -> Nullable<Text>,
        importance -> Nullable<Int2>,
        scheduled_at -> Nullable<Timestamptz>,
        chatwoot_conversation_id -> Nullable<Int8>,
        onec_ref_key -> Nullable<Uuid>,
        onec_number -> Nullable<Text>,
        sync_chatwoot -> Text,
        sync_onec -> Text,
        created_by -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    cons.ticket_history (id) {
        id -> Int8,
        cons_id -> Uuid,
        at -> Timestamptz,
        field -> Text,
        old_value -> Nullable<Text>,
        new_value -> Nullable<Text>,
        source -> Text,
        actor -> Text,
    }
}

diesel::table! {
    sys.outbox (id) {
        id -> Int8,
        cons_id -> Uuid,
        target -> Text,
        kind -> Text,
        payload -> Jsonb,
        status -> Text,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        lease_owner -> Nullable<Text>,
        lease_token -> Nullable<Uuid>,
        lease_expires_at -> Nullable<Timestamptz>,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        delivered_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    sys.outbox_attempts (outbox_id, attempt) {
        outbox_id -> Int8,
        attempt -> Int4,
        started_at -> Timestamptz,
        finished_at -> Timestamptz,
        outcome -> Text,
        http_status -> Nullable<Int2>,
        error -> Nullable<Text>,
    }
}

diesel::table! {
    sys.idempotency_keys (principal, operation, key) {
        principal -> Text,
        operation -> Text,
        key -> Text,
        request_sha256 -> Bytea,
        cons_id -> Uuid,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(tickets -> clients (client_id));
diesel::joinable!(ticket_history -> tickets (cons_id));
diesel::joinable!(outbox -> tickets (cons_id));
diesel::joinable!(outbox_attempts -> outbox (outbox_id));
diesel::joinable!(idempotency_keys -> tickets (cons_id));
diesel::allow_tables_to_appear_in_same_query!(
    clients,
    tickets,
    ticket_history,
    outbox,
    outbox_attempts,
    idempotency_keys
);
