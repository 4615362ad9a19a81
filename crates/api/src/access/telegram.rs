//! Telegram Mini App login: checks `Telegram.WebApp.initData` as Telegram documents it
//! (first-party validation with the bot token; `reliability.md` §4.1). The signed string
//! holds every field but `hash`, the newer `signature` included.

use super::Refusal;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// initData is a few hundred bytes; anything much longer is not Telegram's.
const MAX_INIT_DATA_BYTES: usize = 4096;
/// How far in the future `auth_date` may lie (clock skew between Telegram and us).
const FUTURE_SKEW_SECS: i64 = 60;

/// The bot whose Mini App logins we accept. Keeps only the key derived from the bot
/// token, never the token itself.
#[derive(Clone)]
pub struct TelegramLogin {
    secret_key: [u8; 32],
    max_age: Duration,
}

impl fmt::Debug for TelegramLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelegramLogin")
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

/// The Telegram user an initData vouches for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TelegramUser {
    /// Stable; usernames change.
    pub id: i64,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub username: Option<String>,
}

/// initData split into its fields, before any check of its signature.
#[derive(Debug, PartialEq, Eq)]
pub struct InitData {
    /// Every field but `hash`, sorted by key (so the data-check string is their join).
    fields: BTreeMap<String, String>,
    hash: [u8; 32],
}

impl InitData {
    /// Parses `application/x-www-form-urlencoded` initData, decoding keys and values.
    /// Refuses duplicate keys and a `hash` that is not 64 lower-case hex digits (Telegram
    /// sends lower case; one spelling keeps the check simple to reason about).
    pub fn parse(raw: &str) -> Result<InitData, Refusal> {
        if raw.len() > MAX_INIT_DATA_BYTES {
            return Err(Refusal("initData is too long"));
        }
        let mut fields = BTreeMap::new();
        for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
            if fields
                .insert(key.into_owned(), value.into_owned())
                .is_some()
            {
                return Err(Refusal("initData repeats a field"));
            }
        }
        let hash = fields
            .remove("hash")
            .ok_or(Refusal("initData has no hash"))?;
        if hash.len() != 64 || !hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(Refusal("the initData hash is not 64 lower-case hex digits"));
        }
        let mut bytes = [0; 32];
        hex::decode_to_slice(&hash, &mut bytes)
            .map_err(|_| Refusal("the initData hash is not hex"))?;
        Ok(InitData {
            fields,
            hash: bytes,
        })
    }

    /// `key=value` lines sorted by key, joined by `\n`.
    fn data_check_string(&self) -> String {
        let lines: Vec<String> = self
            .fields
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        lines.join("\n")
    }
}

type HmacSha256 = Hmac<Sha256>;

impl TelegramLogin {
    pub fn new(bot_token: &str, max_age: Duration) -> TelegramLogin {
        TelegramLogin {
            secret_key: hmac_sha256(b"WebAppData", bot_token.as_bytes()),
            max_age,
        }
    }

    /// The user `raw` vouches for, if its signature is this bot's and it is fresh at
    /// `now` (Unix seconds).
    pub fn verify(&self, raw: &str, now: i64) -> Result<TelegramUser, Refusal> {
        let init_data = InitData::parse(raw)?;
        let mut mac = HmacSha256::new_from_slice(&self.secret_key)
            .map_err(|_| Refusal("HMAC key rejected"))?;
        mac.update(init_data.data_check_string().as_bytes());
        // Constant-time comparison.
        mac.verify_slice(&init_data.hash)
            .map_err(|_| Refusal("the initData signature is not this bot's"))?;

        let auth_date: i64 = init_data
            .fields
            .get("auth_date")
            .and_then(|raw| raw.parse().ok())
            .ok_or(Refusal("initData has no auth_date"))?;
        let max_age = i64::try_from(self.max_age.as_secs()).unwrap_or(i64::MAX);
        if now.saturating_sub(auth_date) > max_age {
            return Err(Refusal("initData is too old"));
        }
        if auth_date.saturating_sub(now) > FUTURE_SKEW_SECS {
            return Err(Refusal("initData is dated in the future"));
        }
        let user = init_data
            .fields
            .get("user")
            .ok_or(Refusal("initData names no user"))?;
        serde_json::from_str(user).map_err(|_| Refusal("the initData user is not valid"))
    }

    /// initData with these fields, signed as Telegram signs it for this bot: for tests
    /// and for the ready-to-paste login of `consctl dev`.
    pub fn sign(&self, fields: &[(&str, &str)]) -> String {
        let init_data = InitData {
            fields: fields
                .iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                .collect(),
            hash: [0; 32],
        };
        let hash = hmac_sha256(&self.secret_key, init_data.data_check_string().as_bytes());
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .append_pair("hash", &hex::encode(hash))
            .finish()
    }
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length; the fallback is never taken.
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
        return [0; 32];
    };
    mac.update(message);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Public test vectors (reliability.md §4.3): demo bot tokens printed in Telegram's
    // and telegram-apps' documentation.
    const TOKEN_A: &str = "5768337691:AAH5YkoiEuPk8-FZa32hStHTqXiLPtAEhx8";
    const DATA_A: &str = "query_id=AAHdF6IQAAAAAN0XohDhrOrc&user=%7B%22id%22%3A279058397%2C%22first_name%22%3A%22Vladislav%22%2C%22last_name%22%3A%22Kibenko%22%2C%22username%22%3A%22vdkfrost%22%2C%22language_code%22%3A%22ru%22%2C%22is_premium%22%3Atrue%7D&auth_date=1662771648&hash=c501b71e775f74ce10e377dea85a7ea24ecd640b223ea86dfe453e0eaed2e2b2";
    const AUTH_DATE_A: i64 = 1_662_771_648;
    const TOKEN_B: &str = "7342037359:AAHI25ES9xCOMPokpYoz-p8XVrZUdygo2J4";
    const DATA_B: &str = "user=%7B%22id%22%3A279058397%2C%22first_name%22%3A%22Vladislav%20%2B%20-%20%3F%20%5C%2F%22%2C%22last_name%22%3A%22Kibenko%22%2C%22username%22%3A%22vdkfrost%22%2C%22language_code%22%3A%22ru%22%2C%22is_premium%22%3Atrue%2C%22allows_write_to_pm%22%3Atrue%2C%22photo_url%22%3A%22https%3A%5C%2F%5C%2Ft.me%5C%2Fi%5C%2Fuserpic%5C%2F320%5C%2F4FPEE4tmP3ATHa57u6MqTDih13LTOiMoKoLDRG4PnSA.svg%22%7D&chat_instance=8134722200314281151&chat_type=private&auth_date=1733509682&signature=TYJxVcisqbWjtodPepiJ6ghziUL94-KNpG8Pau-X7oNNLNBM72APCpi_RKiUlBvcqo5L-LAxIc3dnTzcZX_PDg&hash=a433d8f9847bd6addcc563bff7cc82c89e97ea0d90c11fe5729cae6796a36d73";
    const AUTH_DATE_B: i64 = 1_733_509_682;
    const DAY: Duration = Duration::from_secs(86_400);

    fn bot(token: &str) -> TelegramLogin {
        TelegramLogin::new(token, DAY)
    }

    #[test]
    fn the_public_vectors_verify() {
        let user = bot(TOKEN_A).verify(DATA_A, AUTH_DATE_A + 10).unwrap();
        assert_eq!(user.id, 279_058_397);
        assert_eq!(user.first_name.as_deref(), Some("Vladislav"));
        let user = bot(TOKEN_B).verify(DATA_B, AUTH_DATE_B + 10).unwrap();
        assert_eq!(user.first_name.as_deref(), Some("Vladislav + - ? /"));
    }

    #[test]
    fn the_signature_field_is_part_of_the_signed_string() {
        let without: String = DATA_B
            .split('&')
            .filter(|pair| !pair.starts_with("signature="))
            .collect::<Vec<_>>()
            .join("&");
        assert!(bot(TOKEN_B).verify(&without, AUTH_DATE_B).is_err());
    }

    #[test]
    fn another_bots_init_data_is_refused() {
        assert!(bot(TOKEN_B).verify(DATA_A, AUTH_DATE_A).is_err());
        assert!(bot(TOKEN_A).verify(DATA_B, AUTH_DATE_B).is_err());
    }

    #[test]
    fn stale_and_future_init_data_is_refused() {
        assert!(bot(TOKEN_A).verify(DATA_A, AUTH_DATE_A + 86_400).is_ok());
        assert_eq!(
            bot(TOKEN_A).verify(DATA_A, AUTH_DATE_A + 86_401),
            Err(Refusal("initData is too old"))
        );
        let short = TelegramLogin::new(TOKEN_A, Duration::from_secs(3600));
        assert!(short.verify(DATA_A, AUTH_DATE_A + 3601).is_err());
        assert!(bot(TOKEN_A).verify(DATA_A, AUTH_DATE_A - 60).is_ok());
        assert_eq!(
            bot(TOKEN_A).verify(DATA_A, AUTH_DATE_A - 61),
            Err(Refusal("initData is dated in the future"))
        );
    }

    #[test]
    fn tampering_is_refused() {
        let cases = [
            // another user id
            DATA_A.replace("279058397", "279058398"),
            // another auth_date
            DATA_A.replace("auth_date=1662771648", "auth_date=1662771649"),
            // a field added
            format!("{DATA_A}&extra=1"),
            // a field repeated
            format!("auth_date=1662771648&{DATA_A}"),
            // the hash in upper case: the same bytes, but not Telegram's spelling
            DATA_A.replace("c501b71e775f74ce", "C501B71E775F74CE"),
            // no hash
            DATA_A.split("&hash=").next().unwrap().to_owned(),
            // a short hash
            DATA_A.replace("eaed2e2b2", "eaed2e2b"),
        ];
        for case in cases {
            assert!(
                bot(TOKEN_A).verify(&case, AUTH_DATE_A).is_err(),
                "accepted {case}"
            );
        }
        // Reordering the fields changes nothing: the signed string is sorted.
        let mut pairs: Vec<&str> = DATA_A.split('&').collect();
        pairs.reverse();
        assert!(bot(TOKEN_A).verify(&pairs.join("&"), AUTH_DATE_A).is_ok());
    }

    #[test]
    fn sign_reproduces_telegrams_hash() {
        let fields: Vec<(String, String)> = form_urlencoded::parse(DATA_A.as_bytes())
            .into_owned()
            .filter(|(key, _)| key != "hash")
            .collect();
        let fields: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            bot(TOKEN_A).sign(&fields).rsplit_once("hash=").unwrap().1,
            DATA_A.rsplit_once("hash=").unwrap().1
        );
    }

    proptest! {
        #[test]
        fn arbitrary_input_is_refused_without_panicking(raw in ".{0,800}") {
            prop_assert!(bot(TOKEN_A).verify(&raw, AUTH_DATE_A).is_err());
        }

        #[test]
        fn arbitrary_form_data_parses_or_is_refused_without_panicking(
            pairs in proptest::collection::vec(("[a-z_%&=+]{0,8}", "[ -~]{0,16}"), 0..8)
        ) {
            let raw: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = InitData::parse(&raw.join("&"));
        }

        #[test]
        fn signed_fields_verify_and_any_changed_value_does_not(
            name in "\\PC{1,20}",
            extra in "\\PC{0,20}",
            id in 1i64..10_000_000_000,
        ) {
            let user = serde_json::json!({"id": id, "first_name": name}).to_string();
            let auth_date = AUTH_DATE_A.to_string();
            let mut fields = vec![
                ("auth_date", auth_date.as_str()),
                ("user", user.as_str()),
                ("chat_instance", extra.as_str()),
            ];
            let data = bot(TOKEN_A).sign(&fields);
            let verified = bot(TOKEN_A).verify(&data, AUTH_DATE_A).unwrap();
            prop_assert_eq!(verified.id, id);

            let changed = format!("{extra}x");
            fields[2].1 = &changed;
            let hash = data.rsplit_once("hash=").unwrap().1;
            let tampered = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&fields)
                .append_pair("hash", hash)
                .finish();
            prop_assert!(bot(TOKEN_A).verify(&tampered, AUTH_DATE_A).is_err());
        }
    }
}
