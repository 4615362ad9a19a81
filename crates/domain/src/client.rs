//! Client identity values: phone, e-mail, INN and names, each normalised so that the
//! unique constraints of the database compare like with like.

use crate::InvalidValue;
use crate::ticket::bounded_text;

/// A phone number in E.164 (`+` and 8 to 15 digits, no leading zero). Chatwoot refuses
/// any other form, so we refuse it at the door instead of at delivery time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        const REASON: &str = "must be in E.164 format: + and 8 to 15 digits, no spaces";
        let digits = raw.strip_prefix('+').ok_or(InvalidValue(REASON))?;
        let valid = (8..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if valid {
            Ok(PhoneNumber(raw.to_owned()))
        } else {
            Err(InvalidValue(REASON))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An e-mail address, lower-cased so `A@x.uz` and `a@x.uz` are one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        const REASON: &str = "must be an e-mail address like name@example.uz";
        let email = raw.trim().to_lowercase();
        if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(InvalidValue(REASON));
        }
        match email.split_once('@') {
            Some((local, domain))
                if !local.is_empty()
                    && local.len() <= 64
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.') =>
            {
                Ok(Email(email))
            }
            _ => Err(InvalidValue(REASON)),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Taxpayer number of Uzbekistan: 9 digits for an organisation (ИНН), 14 digits for a
/// person (ПИНФЛ).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inn(String);

impl Inn {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let valid = matches!(raw.len(), 9 | 14) && raw.bytes().all(|b| b.is_ascii_digit());
        if valid {
            Ok(Inn(raw.to_owned()))
        } else {
            Err(InvalidValue("must be 9 or 14 digits"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The subscriber code (код абонента) of the client's organisation in 1C.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeAbonent(String);

impl CodeAbonent {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let code = raw.trim();
        let valid = (1..=20).contains(&code.len())
            && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if valid {
            Ok(CodeAbonent(code.to_owned()))
        } else {
            Err(InvalidValue("must be 1 to 20 letters, digits or dashes"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

bounded_text!(
    /// A person's name as they gave it.
    PersonName, max = 255, "must be at most 255 characters"
);
bounded_text!(
    /// The client's organisation.
    CompanyName, max = 255, "must be at most 255 characters"
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn phone_examples() {
        assert!(PhoneNumber::parse("+998901234567").is_ok());
        assert!(PhoneNumber::parse("998901234567").is_err());
        assert!(PhoneNumber::parse("+99890 123 45 67").is_err());
        assert!(PhoneNumber::parse("+0998901234567").is_err());
        assert!(PhoneNumber::parse("+1234567").is_err());
        assert!(PhoneNumber::parse("+1234567890123456").is_err());
    }

    #[test]
    fn email_is_lower_cased() {
        assert_eq!(
            Email::parse(" D.Karimova@Example.UZ ").map(|e| e.0),
            Ok("d.karimova@example.uz".into())
        );
        for bad in [
            "", "a", "a@", "@b.uz", "a@b", "a@@b.uz", "a b@c.uz", "a@.uz", "a@uz.",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn inn_examples() {
        assert!(Inn::parse("301234567").is_ok());
        assert!(Inn::parse("30123456789012").is_ok());
        assert!(Inn::parse("3012345678").is_err());
        assert!(Inn::parse("30123456a").is_err());
    }

    proptest! {
        #[test]
        fn every_e164_number_is_accepted(first in 1u8..=9, rest in "[0-9]{7,14}") {
            let raw = format!("+{first}{rest}");
            prop_assert_eq!(PhoneNumber::parse(&raw).map(|p| p.0), Ok(raw));
        }

        #[test]
        fn a_phone_with_anything_but_digits_after_the_plus_is_refused(s in "\\PC*") {
            let raw = format!("+9989{s}");
            let only_digits = s.chars().all(|c| c.is_ascii_digit());
            if !only_digits {
                prop_assert!(PhoneNumber::parse(&raw).is_err());
            }
        }

        #[test]
        fn inn_is_accepted_exactly_when_it_has_9_or_14_ascii_digits(s in "[0-9a]{0,16}") {
            let expected = (s.len() == 9 || s.len() == 14) && s.bytes().all(|b| b.is_ascii_digit());
            prop_assert_eq!(Inn::parse(&s).is_ok(), expected);
        }

        #[test]
        fn a_parsed_email_is_stable_under_reparsing(local in "[a-zA-Z0-9._%+-]{1,20}", domain in "[a-z0-9-]{1,20}\\.[a-z]{2,6}") {
            let parsed = Email::parse(&format!("{local}@{domain}")).map(|e| e.0);
            prop_assert!(parsed.is_ok());
            let once = parsed.unwrap_or_default();
            prop_assert_eq!(Email::parse(&once).map(|e| e.0), Ok(once.clone()));
        }
    }
}
