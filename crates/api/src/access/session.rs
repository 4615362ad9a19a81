//! Session tokens: what `POST /api/auth/login` issues and the ticket routes accept from a
//! logged-in client. A session token is a short-lived JWT (HS256) naming the client; the
//! first key of `SESSION_SECRET` signs, and every key listed there verifies, so a new key
//! can be put in front while the old one still verifies the sessions it signed.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::time::Duration;
use uuid::Uuid;

/// Who issues and who accepts session tokens: only this API.
const ISSUER: &str = "cons-api";
const AUDIENCE: &str = "cons-api/session";
/// A key shorter than this is refused at start (HS256 wants 256 bits of key).
const MIN_KEY_CHARS: usize = 32;
/// Longer "tokens" are refused before any parsing.
const MAX_TOKEN_BYTES: usize = 2048;

#[derive(Clone)]
struct SessionKey {
    /// Names the key in the token header, so a token is checked against its own key only.
    id: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// The keys of `SESSION_SECRET` and the lifetime of the sessions they sign.
#[derive(Clone)]
pub struct SessionKeys {
    keys: Vec<SessionKey>,
    ttl: Duration,
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionKeys")
            .field("keys", &self.keys.len())
            .field("ttl", &self.ttl)
            .finish()
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    /// The client.
    sub: Uuid,
    iat: i64,
    exp: i64,
}

/// A freshly signed session.
#[derive(Debug)]
pub struct Session {
    pub token: String,
    pub expires_in: Duration,
}

impl SessionKeys {
    /// Parses `SESSION_SECRET`: one key, or several separated by commas, the signing key
    /// first.
    pub fn parse(raw: &str, ttl: Duration) -> Result<SessionKeys, String> {
        let mut keys = Vec::new();
        for secret in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if secret.chars().count() < MIN_KEY_CHARS {
                return Err(format!(
                    "each key must be at least {MIN_KEY_CHARS} characters"
                ));
            }
            let digest = Sha256::digest(format!("session key id:{secret}").as_bytes());
            keys.push(SessionKey {
                id: hex::encode(&digest[..8]),
                encoding: EncodingKey::from_secret(secret.as_bytes()),
                decoding: DecodingKey::from_secret(secret.as_bytes()),
            });
        }
        if keys.is_empty() {
            return Err("expected at least one key".into());
        }
        Ok(SessionKeys { keys, ttl })
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A session for `client_id`, issued at `issued_at` (Unix seconds).
    pub fn issue(
        &self,
        client_id: Uuid,
        issued_at: i64,
    ) -> Result<Session, jsonwebtoken::errors::Error> {
        let signing = &self.keys[0];
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(signing.id.clone());
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX);
        let claims = Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: client_id,
            iat: issued_at,
            exp: issued_at.saturating_add(ttl),
        };
        Ok(Session {
            token: jsonwebtoken::encode(&header, &claims, &signing.encoding)?,
            expires_in: self.ttl,
        })
    }

    /// The client of a valid, unexpired session token; `None` for anything else.
    pub fn verify(&self, token: &str) -> Option<Uuid> {
        if token.len() > MAX_TOKEN_BYTES {
            return None;
        }
        let kid = jsonwebtoken::decode_header(token).ok()?.kid?;
        let key = self.keys.iter().find(|key| key.id == kid)?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        // Our own clock signed it: no leeway.
        validation.leeway = 0;
        jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation)
            .ok()
            .map(|data| data.claims.sub)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY_A: &str = "session-key-a-0123456789abcdef0123456789";
    const KEY_B: &str = "session-key-b-0123456789abcdef0123456789";

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn keys(raw: &str) -> SessionKeys {
        SessionKeys::parse(raw, Duration::from_secs(3600)).unwrap()
    }

    #[test]
    fn an_issued_session_verifies_as_its_client() {
        let client = Uuid::now_v7();
        let session = keys(KEY_A).issue(client, now()).unwrap();
        assert_eq!(session.expires_in, Duration::from_secs(3600));
        assert_eq!(keys(KEY_A).verify(&session.token), Some(client));
    }

    #[test]
    fn a_rotated_key_still_verifies_what_it_signed_until_it_is_removed() {
        let client = Uuid::now_v7();
        let old = keys(KEY_A).issue(client, now()).unwrap().token;
        let rotated = keys(&format!("{KEY_B},{KEY_A}"));
        assert_eq!(rotated.verify(&old), Some(client));
        let new = rotated.issue(client, now()).unwrap().token;
        assert_eq!(keys(KEY_B).verify(&new), Some(client));
        assert_eq!(keys(KEY_B).verify(&old), None, "the old key is gone");
    }

    #[test]
    fn expired_tampered_and_foreign_tokens_are_refused() {
        let client = Uuid::now_v7();
        let expired = keys(KEY_A).issue(client, now() - 3601).unwrap().token;
        assert_eq!(keys(KEY_A).verify(&expired), None);

        let token = keys(KEY_A).issue(client, now()).unwrap().token;
        let (head, signature) = token.rsplit_once('.').unwrap();
        let (header, _) = head.split_once('.').unwrap();
        // Another client's id in the claims, with the original signature.
        let forged_claims = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            serde_json::json!({"iss": ISSUER, "aud": AUDIENCE, "sub": Uuid::now_v7(),
                "iat": now(), "exp": now() + 3600})
            .to_string(),
        );
        assert_eq!(
            keys(KEY_A).verify(&format!("{header}.{forged_claims}.{signature}")),
            None
        );
        // A token signed with a key we do not have, naming our key's id.
        let foreign = SessionKeys {
            keys: vec![SessionKey {
                id: keys(KEY_A).keys[0].id.clone(),
                ..keys(KEY_B).keys[0].clone()
            }],
            ttl: Duration::from_secs(3600),
        };
        let foreign = foreign.issue(client, now()).unwrap().token;
        assert_eq!(keys(KEY_A).verify(&foreign), None);
        assert_eq!(keys(KEY_A).verify(""), None);
        assert_eq!(keys(KEY_A).verify(&"a".repeat(5000)), None);
    }

    #[test]
    fn short_or_missing_keys_are_refused() {
        assert!(SessionKeys::parse("short", Duration::from_secs(60)).is_err());
        assert!(SessionKeys::parse(" , ", Duration::from_secs(60)).is_err());
        assert!(SessionKeys::parse(&format!("{KEY_A},short"), Duration::from_secs(60)).is_err());
    }

    /// The bytes a token's parts stand for (`None` if one is not canonical base64url).
    fn decoded_parts(token: &str) -> Option<Vec<Vec<u8>>> {
        use base64::Engine;
        token
            .split('.')
            .map(|part| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(part)
                    .ok()
            })
            .collect()
    }

    proptest! {
        #[test]
        fn arbitrary_strings_never_verify(token in ".{0,600}") {
            prop_assert_eq!(keys(KEY_A).verify(&token), None);
        }

        #[test]
        fn any_changed_character_breaks_a_token(index in 0usize..400, replacement in "[A-Za-z0-9_.-]") {
            let token = keys(KEY_A).issue(Uuid::now_v7(), now()).unwrap().token;
            let index = index % token.len();
            let mut tampered = token.clone();
            tampered.replace_range(index..=index, &replacement);
            if decoded_parts(&tampered) != decoded_parts(&token) {
                prop_assert_eq!(keys(KEY_A).verify(&tampered), None);
            }
        }
    }
}
