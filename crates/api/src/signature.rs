//! Webhook signatures: `sha256=<hex HMAC-SHA256(secret, timestamp + "." + raw body)>` with
//! the timestamp in a separate header (Chatwoot's scheme, which the 1C extension uses
//! too), checked in constant time against every active secret, with the timestamp inside
//! a window in both directions.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// How far a delivery's timestamp may be from our clock, either way.
pub const MAX_SKEW_SECONDS: i64 = 300;

/// The secrets a receiver accepts: one, or two while one is being rotated.
#[derive(Clone, Default)]
pub struct WebhookSecrets(Vec<Vec<u8>>);

impl std::fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebhookSecrets({} configured)", self.0.len())
    }
}

impl WebhookSecrets {
    /// Comma-separated secrets; empty means none.
    pub fn parse(raw: &str) -> Result<WebhookSecrets, String> {
        let secrets: Vec<Vec<u8>> = raw
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.as_bytes().to_vec())
            .collect();
        if secrets.iter().any(|s| s.len() < 16) {
            return Err("each secret must be at least 16 characters".into());
        }
        Ok(WebhookSecrets(secrets))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Checks a delivery. The signature is verified before the body is parsed; the
    /// caller learns only whether it passed (and, for metrics, which check failed).
    pub fn verify(
        &self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now_unix: i64,
    ) -> Result<(), Rejection> {
        let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
            return Err(Rejection::BadSignature);
        };
        let Some(presented) = signature
            .strip_prefix("sha256=")
            .and_then(|hex| hex::decode(hex).ok())
        else {
            return Err(Rejection::BadSignature);
        };
        let signed_by_us = self.0.iter().any(|secret| {
            mac(secret, timestamp, body).is_ok_and(|mac| mac.verify_slice(&presented).is_ok())
        });
        if !signed_by_us {
            return Err(Rejection::BadSignature);
        }
        // Checked after the MAC so that the timestamp we trust is the one that was signed.
        match timestamp.parse::<i64>() {
            Ok(at) if (now_unix - at).abs() <= MAX_SKEW_SECONDS => Ok(()),
            _ => Err(Rejection::Stale),
        }
    }
}

/// Why a delivery was refused (all of them are a plain 401 to the sender).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    BadSignature,
    Stale,
}

fn mac(
    secret: &[u8],
    timestamp: &str,
    body: &[u8],
) -> Result<Hmac<Sha256>, hmac::digest::InvalidLength> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret)?;
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What a sender puts in its signature header: the simulators' signer, so the
    /// receiver is tested against code it does not share.
    fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
        cons_sim::webhooks::sign(std::str::from_utf8(secret).unwrap(), timestamp, body)
    }

    const SECRET: &str = "dN4cQz8pVt2sWm6hJr9kXe3B";

    /// Chatwoot's published vectors (`fixtures/chatwoot/webhooks/signature_test_vectors.json`).
    #[test]
    fn chatwoot_test_vectors() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/fixtures/chatwoot/webhooks/signature_test_vectors.json"
        );
        let vectors: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let vectors = vectors["vectors"].as_array().unwrap();
        assert!(!vectors.is_empty());
        for vector in vectors {
            let secret = vector["secret"].as_str().unwrap();
            let timestamp = vector["timestamp"].as_str().unwrap();
            let body = match vector["body_file"].as_str() {
                Some(file) => {
                    std::fs::read_to_string(path.replace("signature_test_vectors.json", file))
                        .unwrap()
                }
                None => vector["body"].as_str().unwrap().to_owned(),
            };
            let expected = vector["expected_signature"].as_str().unwrap();
            assert_eq!(
                sign(secret.as_bytes(), timestamp, body.as_bytes()),
                expected
            );
            let secrets = WebhookSecrets::parse(secret).unwrap();
            let now = timestamp.parse::<i64>().unwrap();
            assert_eq!(
                secrets.verify(Some(timestamp), Some(expected), body.as_bytes(), now),
                Ok(())
            );
            if let Some(wrong) = vector["wrong_signature_body_only"].as_str() {
                assert_eq!(
                    secrets.verify(Some(timestamp), Some(wrong), body.as_bytes(), now),
                    Err(Rejection::BadSignature),
                    "{}: the body alone must not verify",
                    vector["name"]
                );
            }
        }
    }

    #[test]
    fn refusals() {
        let secrets = WebhookSecrets::parse(SECRET).unwrap();
        let body = br#"{"event":"message_created"}"#;
        let good = sign(SECRET.as_bytes(), "1000", body);
        assert_eq!(
            secrets.verify(Some("1000"), Some(&good), body, 1000),
            Ok(())
        );
        assert_eq!(
            secrets.verify(Some("1000"), Some(&good), body, 1300),
            Ok(())
        );
        for (timestamp, signature, now, why) in [
            (None, Some(good.as_str()), 1000, Rejection::BadSignature),
            (Some("1000"), None, 1000, Rejection::BadSignature),
            (
                Some("1001"),
                Some(good.as_str()),
                1000,
                Rejection::BadSignature,
            ),
            (
                Some("1000"),
                Some("sha256=00"),
                1000,
                Rejection::BadSignature,
            ),
            (
                Some("1000"),
                Some(&good[7..]),
                1000,
                Rejection::BadSignature,
            ),
            (Some("1000"), Some(good.as_str()), 1301, Rejection::Stale),
            (Some("1000"), Some(good.as_str()), 699, Rejection::Stale),
        ] {
            assert_eq!(secrets.verify(timestamp, signature, body, now), Err(why));
        }
        let tampered = br#"{"event":"message_created "}"#;
        assert_eq!(
            secrets.verify(Some("1000"), Some(&good), tampered, 1000),
            Err(Rejection::BadSignature)
        );
        assert_eq!(
            WebhookSecrets::default().verify(Some("1000"), Some(&good), body, 1000),
            Err(Rejection::BadSignature)
        );
    }

    #[test]
    fn a_rotated_secret_still_verifies() {
        let old = "old-secret-0123456789";
        let secrets = WebhookSecrets::parse(&format!("new-secret-0123456789, {old}")).unwrap();
        let body = b"{}";
        assert_eq!(
            secrets.verify(Some("5"), Some(&sign(old.as_bytes(), "5", body)), body, 5),
            Ok(())
        );
        assert!(WebhookSecrets::parse("short").is_err());
    }

    proptest! {
        #[test]
        fn never_panics_and_never_accepts_garbage(
            timestamp in proptest::option::of(".{0,24}"),
            signature in proptest::option::of(".{0,80}"),
            body in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let secrets = WebhookSecrets::parse(SECRET).unwrap();
            let verdict = secrets.verify(timestamp.as_deref(), signature.as_deref(), &body, 0);
            prop_assert!(verdict.is_err());
        }
    }
}
