//! Confirmation before acting (`mcp.confirm`): an acting tool call first asks the person at
//! the client, through MCP elicitation, whether it may go ahead, showing what would be done and
//! to whom. A message in the archive can tell a model to forward something; the question goes
//! to the person, whom no message can answer for.
//!
//! The question is put before the tool runs and before anything leaves; an answer other than an
//! explicit approval (declined, dismissed, no answer in time, a client that cannot ask) stops
//! the call with a result that says nothing was done.

use std::time::Duration;

use rmcp::RoleServer;
use rmcp::model::JsonObject;
use rmcp::service::{ElicitationError, Peer, ServiceError};
use serde::Deserialize;

/// How long the person has to answer before the call stops unanswered.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(300);

/// The form the person fills in: one checkbox.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[schemars(title = "Confirm")]
pub struct Approval {
    /// Tick to let the assistant go ahead.
    #[schemars(title = "Go ahead")]
    pub approve: bool,
}

rmcp::elicit_safe!(Approval);

/// The argument naming the chat or person an acting tool acts on.
pub fn recipient_argument(arguments: &JsonObject) -> Option<(&'static str, &str)> {
    ["recipient", "chat_jid"].into_iter().find_map(|field| {
        arguments
            .get(field)
            .and_then(serde_json::Value::as_str)
            .map(|value| (field, value))
    })
}

fn text<'a>(arguments: &'a JsonObject, field: &str) -> &'a str {
    arguments
        .get(field)
        .and_then(serde_json::Value::as_str)
        .unwrap_or("")
}

/// The question for the call of `tool` with `arguments`, acting on `to` (a name and address
/// as the person knows them).
pub fn question(tool: &str, arguments: &JsonObject, to: &str) -> String {
    let id = text(arguments, "message_id");
    let action = match tool {
        "send_message" => format!(
            "send this WhatsApp message to {to}:\n\n{}",
            text(arguments, "message")
        ),
        "reply_to_message" => format!(
            "reply to message {id} in the chat with {to}:\n\n{}",
            text(arguments, "message")
        ),
        "send_file" => {
            let caption = text(arguments, "caption");
            let mut action = format!("send the file {} to {to}", text(arguments, "media_path"));
            if !caption.is_empty() {
                action.push_str(&format!(", with the caption:\n\n{caption}"));
            }
            action
        }
        "send_audio_message" => format!(
            "send the voice note {} to {to}",
            text(arguments, "media_path")
        ),
        "send_reaction" => match text(arguments, "emoji") {
            "" => format!("remove your reaction from message {id} in the chat with {to}"),
            emoji => format!("react with {emoji} to message {id} in the chat with {to}"),
        },
        "edit_message" => format!(
            "change your message {id} in the chat with {to} to:\n\n{}",
            text(arguments, "message")
        ),
        "delete_message" => {
            format!("delete your message {id} in the chat with {to}, for everyone")
        }
        "mark_read" => {
            let count = arguments
                .get("message_ids")
                .and_then(serde_json::Value::as_array)
                .map_or(0, Vec::len);
            let noun = if count == 1 { "message" } else { "messages" };
            format!("mark {count} {noun} in the chat with {to} as read (the sender sees it)")
        }
        "request_history" => format!("ask your phone for older messages of the chat with {to}"),
        "send_poll" => {
            let options: Vec<&str> = arguments
                .get("options")
                .and_then(serde_json::Value::as_array)
                .map(|options| {
                    options
                        .iter()
                        .filter_map(serde_json::Value::as_str)
                        .collect()
                })
                .unwrap_or_default();
            format!(
                "send this poll to {to}:\n\n{}\n- {}",
                text(arguments, "question"),
                options.join("\n- ")
            )
        }
        other => format!("call {other} on the chat with {to}"),
    };
    format!("The assistant wants to {action}\n\nTick the box to go ahead; anything else stops it.")
}

/// What came of a question.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    Approved,
    /// Not approved; the text says why, for the call's result.
    Stopped(String),
}

/// Asks the person through `peer` and waits for the answer.
pub async fn ask(peer: &Peer<RoleServer>, question: String) -> Answer {
    let answer = peer
        .elicit_with_timeout::<Approval>(question, Some(ANSWER_TIMEOUT))
        .await;
    match answer {
        Ok(Some(Approval { approve: true })) => Answer::Approved,
        Ok(_) | Err(ElicitationError::UserDeclined) => {
            Answer::Stopped("the person declined it at the client".to_owned())
        }
        Err(ElicitationError::UserCancelled) => {
            Answer::Stopped("the person dismissed the question at the client".to_owned())
        }
        Err(ElicitationError::CapabilityNotSupported) => Answer::Stopped(
            "this server asks the person to confirm it first, and this client cannot ask (it \
             does not support MCP elicitation); use a client that does, or ask the server's \
             administrator about mcp.confirm"
                .to_owned(),
        ),
        Err(ElicitationError::Service(ServiceError::Timeout { .. })) => Answer::Stopped(format!(
            "the person did not answer the question within {} s",
            ANSWER_TIMEOUT.as_secs()
        )),
        Err(err) => Answer::Stopped(format!(
            "the question to confirm it could not be asked ({err})"
        )),
    }
}

/// The result text of a call that was stopped, for the model.
pub fn stopped(tool: &str, why: &str) -> String {
    format!(
        "not done: {tool} needs the person's confirmation and {why}. Nothing was sent. Do not \
         try again unless the person asks for it."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(value: serde_json::Value) -> JsonObject {
        match value {
            serde_json::Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn the_question_shows_what_would_be_done_and_to_whom() {
        let to = "Ada (+31611111111)";
        let send = question(
            "send_message",
            &args(
                serde_json::json!({"recipient": "+316", "message": "the keys are under the mat"}),
            ),
            to,
        );
        assert!(
            send.contains("send this WhatsApp message to Ada (+31611111111)"),
            "{send}"
        );
        assert!(send.contains("the keys are under the mat"), "{send}");
        let file = question(
            "send_file",
            &args(serde_json::json!({"media_path": "scan.pdf", "caption": "signed"})),
            to,
        );
        assert!(
            file.contains("scan.pdf") && file.contains("signed"),
            "{file}"
        );
        let unreact = question(
            "send_reaction",
            &args(serde_json::json!({"message_id": "M1", "emoji": ""})),
            to,
        );
        assert!(
            unreact.contains("remove your reaction from message M1"),
            "{unreact}"
        );
        let read = question(
            "mark_read",
            &args(serde_json::json!({"message_ids": ["a"]})),
            to,
        );
        assert!(read.contains("mark 1 message in"), "{read}");
        for tool in crate::mcp::WRITE_TOOLS {
            let asked = question(tool, &JsonObject::new(), to);
            assert!(asked.contains(to), "{tool}: {asked}");
            assert!(
                !asked.contains(&format!("call {tool}")),
                "{tool} has no wording of its own"
            );
        }
    }
}
