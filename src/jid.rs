//! WhatsApp addresses (JIDs): parsing what people and models type, and the canonical forms we store.
//!
//! A JID is `user@server`, optionally with a device (`user:device@server`). People write phone
//! numbers (`+31 6 1234 5678`); models copy JIDs from earlier results. Both end up here, and only
//! well-formed chat addresses come out.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Server part of a phone-number user.
pub const USER_SERVER: &str = "s.whatsapp.net";
/// Server part of a LID (WhatsApp's privacy-preserving per-user id).
pub const LID_SERVER: &str = "lid";
/// Server part of a group.
pub const GROUP_SERVER: &str = "g.us";

/// What kind of conversation a chat JID names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatKind {
    Direct,
    Group,
    Broadcast,
    Newsletter,
    Status,
}

impl ChatKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Group => "group",
            Self::Broadcast => "broadcast",
            Self::Newsletter => "newsletter",
            Self::Status => "status",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Direct,
            Self::Group,
            Self::Broadcast,
            Self::Newsletter,
            Self::Status,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == name)
    }
}

/// Why a string is not a usable address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a WhatsApp address: {reason}")]
pub struct JidError {
    input: String,
    reason: &'static str,
}

/// A chat or user address without a device part, e.g. `31612345678@s.whatsapp.net`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Jid(String);

impl Jid {
    /// Parses a JID or a phone number. Device parts are dropped (`user:3@server` → `user@server`)
    /// because chats and contacts are per user, not per device.
    pub fn parse(input: &str) -> Result<Self, JidError> {
        let trimmed = input.trim();
        let error = |reason| JidError {
            input: input.to_owned(),
            reason,
        };
        if trimmed.is_empty() {
            return Err(error("it is empty"));
        }
        let Some((user, server)) = trimmed.rsplit_once('@') else {
            return Self::from_phone(trimmed).map_err(|_| {
                error("expected a JID like 31612345678@s.whatsapp.net or a phone number like +31612345678")
            });
        };
        let server = server.to_ascii_lowercase();
        // Drop the device (`:12`) and any agent suffix (`.0`) that only multi-device JIDs carry.
        let user = user.split(':').next().unwrap_or(user);
        if user.is_empty() {
            return Err(error("the part before @ is empty"));
        }
        match server.as_str() {
            USER_SERVER | LID_SERVER => {
                let user = user.split('.').next().unwrap_or(user);
                if user.is_empty() || !user.bytes().all(|b| b.is_ascii_digit()) || user.len() > 20 {
                    return Err(error("a user JID has only digits before the @"));
                }
                Ok(Self(format!("{user}@{server}")))
            }
            "c.us" => {
                // The old server name for users; WhatsApp answers with s.whatsapp.net.
                Self::parse(&format!("{user}@{USER_SERVER}"))
            }
            GROUP_SERVER => {
                // `120363…` or the older `creator-timestamp`: digits, at most one inner dash.
                let digits =
                    |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
                let well_formed = match user.split_once('-') {
                    Some((creator, created)) => digits(creator) && digits(created),
                    None => digits(user),
                };
                if !well_formed {
                    return Err(error(
                        "a group JID has only digits (and a dash) before @g.us",
                    ));
                }
                Ok(Self(format!("{user}@{server}")))
            }
            "broadcast" | "newsletter" => {
                if !user.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(error("unexpected characters before the @"));
                }
                Ok(Self(format!("{user}@{server}")))
            }
            _ => Err(error(
                "unknown server; expected @s.whatsapp.net, @lid, @g.us, @broadcast or @newsletter",
            )),
        }
    }

    /// A phone number in international form (`+31 6-1234 5678`, `0031612345678`) as a user JID.
    pub fn from_phone(phone: &str) -> Result<Self, JidError> {
        let error = |reason| JidError {
            input: phone.to_owned(),
            reason,
        };
        let trimmed = phone.trim();
        if trimmed
            .chars()
            .any(|c| !(c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')' | '.')))
        {
            return Err(error(
                "a phone number has only digits, spaces, +, -, ( and )",
            ));
        }
        let mut digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
        if let Some(rest) = digits
            .strip_prefix("00")
            .filter(|_| !trimmed.starts_with('+'))
        {
            digits = rest.to_owned();
        }
        if !(7..=15).contains(&digits.len()) {
            return Err(error(
                "a phone number in international format has 7 to 15 digits, with the country code",
            ));
        }
        Ok(Self(format!("{digits}@{USER_SERVER}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn user(&self) -> &str {
        self.0.split('@').next().unwrap_or(&self.0)
    }

    pub fn server(&self) -> &str {
        self.0.rsplit('@').next().unwrap_or("")
    }

    pub fn is_lid(&self) -> bool {
        self.server() == LID_SERVER
    }

    /// The phone number (digits only) when this is a phone-number JID.
    pub fn phone(&self) -> Option<&str> {
        (self.server() == USER_SERVER).then(|| self.user())
    }

    /// The kind of chat this JID names.
    pub fn chat_kind(&self) -> ChatKind {
        match self.server() {
            GROUP_SERVER => ChatKind::Group,
            "newsletter" => ChatKind::Newsletter,
            "broadcast" if self.user() == "status" => ChatKind::Status,
            "broadcast" => ChatKind::Broadcast,
            _ => ChatKind::Direct,
        }
    }
}

impl fmt::Display for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_in_any_common_spelling() {
        for input in [
            "+31 6 1234 5678",
            "+31-6-12345678",
            "0031612345678",
            "31612345678",
            "(+31) 612.345.678",
        ] {
            assert_eq!(
                Jid::parse(input).unwrap().as_str(),
                "31612345678@s.whatsapp.net",
                "{input}"
            );
        }
    }

    #[test]
    fn device_parts_are_dropped_and_servers_normalised() {
        let cases = [
            (
                "31612345678:12@s.whatsapp.net",
                "31612345678@s.whatsapp.net",
            ),
            (
                "31612345678.0:2@S.WhatsApp.Net",
                "31612345678@s.whatsapp.net",
            ),
            ("31612345678@c.us", "31612345678@s.whatsapp.net"),
            ("123456789012345:4@lid", "123456789012345@lid"),
            ("120363012345678901@g.us", "120363012345678901@g.us"),
            ("31612345678-1600000000@g.us", "31612345678-1600000000@g.us"),
            ("status@broadcast", "status@broadcast"),
        ];
        for (input, expected) in cases {
            assert_eq!(Jid::parse(input).unwrap().as_str(), expected, "{input}");
        }
    }

    #[test]
    fn kinds_follow_the_server() {
        let kind = |s: &str| Jid::parse(s).unwrap().chat_kind();
        assert_eq!(kind("31612345678@s.whatsapp.net"), ChatKind::Direct);
        assert_eq!(kind("1234567@lid"), ChatKind::Direct);
        assert_eq!(kind("120363012345678901@g.us"), ChatKind::Group);
        assert_eq!(kind("status@broadcast"), ChatKind::Status);
        assert_eq!(kind("1600000000@broadcast"), ChatKind::Broadcast);
        assert_eq!(kind("120363000000000000@newsletter"), ChatKind::Newsletter);
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        for input in [
            "",
            "  ",
            "bob",
            "+31",
            "1234567890123456789",
            "abc@s.whatsapp.net",
            "@s.whatsapp.net",
            "31612345678@example.com",
            "x'; DROP TABLE messages;--@g.us",
            "31612345678@",
        ] {
            let err = Jid::parse(input).unwrap_err();
            assert!(
                err.to_string().contains("not a WhatsApp address"),
                "{input}: {err}"
            );
        }
    }

    #[test]
    fn phone_is_only_for_phone_jids() {
        assert_eq!(
            Jid::parse("31612345678@s.whatsapp.net").unwrap().phone(),
            Some("31612345678")
        );
        assert_eq!(Jid::parse("1234567@lid").unwrap().phone(), None);
    }
}
