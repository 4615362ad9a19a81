//! The peers' configuration: `CHATWOOT_API_URL` `CHATWOOT_API_TOKEN` `CHATWOOT_ACCOUNT_ID`
//! `CHATWOOT_INBOX_ID` (required), `CHATWOOT_TEAM_ACCOUNTING_ID`,
//! `CHATWOOT_TEAM_TECH_SUPPORT_ID`, `CHATWOOT_LABELS` (comma-separated; optional);
//! `ONEC_ODATA_URL` `ONEC_USER` `ONEC_PASSWORD` (required), `ONEC_TIME_ZONE` (default
//! `Asia/Tashkent`) and the base's keys `ONEC_COUNTERPARTY_FOLDER_KEY`
//! `ONEC_LANGUAGE_RU_KEY` `ONEC_LANGUAGE_UZ_KEY` `ONEC_CONTACT_KIND_PHONE_KEY`
//! `ONEC_CONTACT_KIND_EMAIL_KEY` (required) and `ONEC_AUTHOR_KEY` (optional).

use super::Peers;
use super::chatwoot::{ChatwootEffects, ChatwootRouting};
use super::onec::{OnecEffects, OnecRouting};
use cons_chatwoot::{ChatwootClient, ChatwootConfig};
use cons_onec::{OnecClient, OnecConfig};
use cons_store::Pool;
use cons_store::settings::{ConfigError, Env};
use std::time::Duration;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct PeersConfig {
    pub chatwoot: ChatwootConfig,
    pub chatwoot_routing: ChatwootRouting,
    pub onec: OnecConfig,
    pub onec_routing: OnecRouting,
}

impl PeersConfig {
    pub fn from_env(
        env: &Env,
        chatwoot_timeout: Duration,
        onec_timeout: Duration,
    ) -> Result<PeersConfig, ConfigError> {
        let id = |variable: &str| -> Result<u64, ConfigError> {
            env.required(variable)?
                .trim()
                .parse()
                .map_err(|_| ConfigError::new(variable, "expected a number"))
        };
        let optional_id = |variable: &str| -> Result<Option<u64>, ConfigError> {
            env.get(variable).map(|_| id(variable)).transpose()
        };
        let key = |variable: &str| -> Result<Uuid, ConfigError> {
            Uuid::parse_str(env.required(variable)?.trim())
                .map_err(|_| ConfigError::new(variable, "expected a GUID"))
        };
        let time_zone = env
            .get("ONEC_TIME_ZONE")
            .unwrap_or_else(|| "Asia/Tashkent".into());
        let mut onec = OnecConfig::new(
            env.required("ONEC_ODATA_URL")?,
            env.required("ONEC_USER")?,
            env.required("ONEC_PASSWORD")?,
        );
        onec.timeout = onec_timeout;
        onec.time_zone = time_zone.parse().map_err(|_| {
            ConfigError::new("ONEC_TIME_ZONE", "expected a time zone like Asia/Tashkent")
        })?;
        Ok(PeersConfig {
            chatwoot: ChatwootConfig {
                base_url: env.required("CHATWOOT_API_URL")?,
                api_token: env.required("CHATWOOT_API_TOKEN")?,
                account_id: id("CHATWOOT_ACCOUNT_ID")?,
                inbox_id: id("CHATWOOT_INBOX_ID")?,
                timeout: chatwoot_timeout,
            },
            chatwoot_routing: ChatwootRouting {
                team_accounting: optional_id("CHATWOOT_TEAM_ACCOUNTING_ID")?,
                team_tech_support: optional_id("CHATWOOT_TEAM_TECH_SUPPORT_ID")?,
                labels: env
                    .get("CHATWOOT_LABELS")
                    .map(|raw| {
                        raw.split(',')
                            .map(str::trim)
                            .filter(|l| !l.is_empty())
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
            },
            onec,
            onec_routing: OnecRouting {
                counterparty_folder: key("ONEC_COUNTERPARTY_FOLDER_KEY")?,
                language_ru: key("ONEC_LANGUAGE_RU_KEY")?,
                language_uz: key("ONEC_LANGUAGE_UZ_KEY")?,
                author: env
                    .get("ONEC_AUTHOR_KEY")
                    .map(|_| key("ONEC_AUTHOR_KEY"))
                    .transpose()?,
                contact_kind_phone: key("ONEC_CONTACT_KIND_PHONE_KEY")?,
                contact_kind_email: key("ONEC_CONTACT_KIND_EMAIL_KEY")?,
            },
        })
    }

    /// The clients, ready to deliver.
    pub fn connect(&self, pool: Pool) -> anyhow::Result<Peers> {
        Ok(Peers {
            pool,
            chatwoot: ChatwootEffects {
                client: ChatwootClient::new(self.chatwoot.clone())?,
                routing: self.chatwoot_routing.clone(),
            },
            onec: OnecEffects {
                client: OnecClient::new(self.onec.clone())?,
                routing: self.onec_routing.clone(),
            },
        })
    }
}
