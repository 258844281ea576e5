//! The arguments each tool takes: names and defaults of the original server's tools, a
//! description on every field (they become the JSON schema the model reads), and nothing else
//! (`deny_unknown_fields`, so a misspelt argument is an error instead of silently ignored).

use schemars::JsonSchema;
use serde::Deserialize;

fn default_limit() -> u32 {
    20
}
fn default_true() -> bool {
    true
}
fn default_one() -> u32 {
    1
}
fn default_five() -> u32 {
    5
}
fn default_history_count() -> u32 {
    50
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchContactsParams {
    /// Text to look for in contact names and phone numbers (any part, any case).
    pub query: String,
    /// Most contacts to return (1-200).
    #[serde(default = "default_limit")]
    pub limit: u32,
    /// Page of results to return, starting at 0.
    #[serde(default)]
    pub page: u32,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListMessagesParams {
    /// Only messages after this time: ISO-8601, e.g. `2025-01-31T18:00:00Z` or `2025-01-31`.
    #[serde(default)]
    pub after: Option<String>,
    /// Only messages before this time: ISO-8601, e.g. `2025-02-01T00:00:00+01:00`.
    #[serde(default)]
    pub before: Option<String>,
    /// Only messages written by this person: a phone number (`+31612345678`) or a JID.
    #[serde(default)]
    pub sender_phone_number: Option<String>,
    /// Only messages of this chat (a JID from `list_chats`, or a phone number for a direct chat).
    #[serde(default)]
    pub chat_jid: Option<String>,
    /// Full-text search: every word must appear (any case, accents ignored); "quoted words"
    /// must appear together.
    #[serde(default)]
    pub query: Option<String>,
    /// Most messages to return (1-200).
    #[serde(default = "default_limit")]
    pub limit: u32,
    /// Page of results to return, starting at 0.
    #[serde(default)]
    pub page: u32,
    /// Also return neighbouring messages of each result.
    #[serde(default = "default_true")]
    pub include_context: bool,
    /// With `include_context`: how many older messages to add to each result.
    #[serde(default = "default_one")]
    pub context_before: u32,
    /// With `include_context`: how many newer messages to add to each result.
    #[serde(default = "default_one")]
    pub context_after: u32,
}

/// How `list_chats` orders its results.
#[derive(Clone, Copy, Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SortBy {
    /// Most recent activity first.
    #[default]
    LastActive,
    /// Alphabetical by name.
    Name,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListChatsParams {
    /// Only chats whose name, contact name or JID contains this text.
    #[serde(default)]
    pub query: Option<String>,
    /// Most chats to return (1-200).
    #[serde(default = "default_limit")]
    pub limit: u32,
    /// Page of results to return, starting at 0.
    #[serde(default)]
    pub page: u32,
    /// Include each chat's latest message.
    #[serde(default = "default_true")]
    pub include_last_message: bool,
    /// Order: `last_active` (most recent first) or `name` (alphabetical).
    #[serde(default)]
    pub sort_by: SortBy,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetChatParams {
    /// The chat's JID (from `list_chats`), or a phone number for a direct chat.
    pub chat_jid: String,
    /// Include the chat's latest message.
    #[serde(default = "default_true")]
    pub include_last_message: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DirectChatParams {
    /// The contact's phone number in international format (`+31612345678`) or their JID.
    pub sender_phone_number: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactChatsParams {
    /// The contact's JID or phone number.
    pub jid: String,
    /// Most chats to return (1-200).
    #[serde(default = "default_limit")]
    pub limit: u32,
    /// Page of results to return, starting at 0.
    #[serde(default)]
    pub page: u32,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LastInteractionParams {
    /// The contact's JID or phone number.
    pub jid: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageContextParams {
    /// The message id (from `list_messages`).
    pub message_id: String,
    /// The chat the message is in; needed only when the id occurs in more than one chat.
    #[serde(default)]
    pub chat_jid: Option<String>,
    /// How many older messages to return (0-200).
    #[serde(default = "default_five")]
    pub before: u32,
    /// How many newer messages to return (0-200).
    #[serde(default = "default_five")]
    pub after: u32,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessageParams {
    /// Who receives it: a phone number in international format (`+31612345678`), a contact
    /// JID, or a group JID (`...@g.us`).
    pub recipient: String,
    /// The text to send.
    pub message: String,
    /// People to mention (phone numbers in international format or contact JIDs); each must
    /// appear in `message` as `@` followed by their number, where the mention should show.
    #[serde(default)]
    pub mentions: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendFileParams {
    /// Who receives it: a phone number in international format, a contact JID or a group JID.
    pub recipient: String,
    /// The file to send: a path inside the server's outbox directory (absolute, or relative to
    /// the outbox). Files elsewhere are refused.
    pub media_path: String,
    /// Optional caption shown under an image, video or document.
    #[serde(default)]
    pub caption: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendAudioParams {
    /// Who receives it: a phone number in international format, a contact JID or a group JID.
    pub recipient: String,
    /// The audio file to send as a voice note: a path inside the server's outbox directory
    /// (absolute, or relative to the outbox). Ogg/Opus plays natively; other formats are
    /// converted when possible.
    pub media_path: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DownloadMediaParams {
    /// The id of the message that carries the media.
    pub message_id: String,
    /// The chat the message is in.
    pub chat_jid: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReactionParams {
    /// The chat the message is in.
    pub chat_jid: String,
    /// The id of the message to react to.
    pub message_id: String,
    /// One emoji, e.g. "👍"; an empty string removes your reaction.
    pub emoji: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendPollParams {
    /// Who receives it: a phone number in international format, a contact JID or a group JID.
    pub recipient: String,
    /// The question.
    pub question: String,
    /// The answers to choose from: 2 to 12, each different.
    pub options: Vec<String>,
    /// True to let each voter pick more than one answer (default: one).
    #[serde(default)]
    pub multiple_answers: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PollResultsParams {
    /// The chat the poll is in.
    pub chat_jid: String,
    /// The id of the poll's message.
    pub message_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkReadParams {
    /// The chat whose messages to mark as read.
    pub chat_jid: String,
    /// Ids of the messages to mark as read (at least one).
    pub message_ids: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EditParams {
    /// The chat the message is in.
    pub chat_jid: String,
    /// The id of your own text message to change (from list_messages).
    pub message_id: String,
    /// The new text, replacing the old one.
    pub message: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteParams {
    /// The chat the message is in.
    pub chat_jid: String,
    /// The id of your own message to delete for everyone (from list_messages).
    pub message_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyParams {
    /// The chat the quoted message is in.
    pub chat_jid: String,
    /// The id of the message to reply to.
    pub message_id: String,
    /// The text of the reply.
    pub message: String,
    /// People to mention, as for `send_message`: each as `@` and their number in `message`.
    #[serde(default)]
    pub mentions: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListGroupsParams {
    /// Only groups whose name or JID contains this text.
    #[serde(default)]
    pub query: Option<String>,
    /// Most groups to return (1-200).
    #[serde(default = "default_limit")]
    pub limit: u32,
    /// Page of results to return, starting at 0.
    #[serde(default)]
    pub page: u32,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetGroupParams {
    /// The group's JID (`...@g.us`, from `list_groups`).
    pub group_jid: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestHistoryParams {
    /// The chat to fetch older messages for.
    pub chat_jid: String,
    /// How many older messages to ask the phone for (1-500).
    #[serde(default = "default_history_count")]
    pub count: u32,
}
