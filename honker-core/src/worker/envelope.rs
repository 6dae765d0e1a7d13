//! The task envelope: the one JSON shape a task's job payload has, in every
//! language, so a job enqueued by one language's task is run by another's
//! handler registered under the same name.
//!
//! ```json
//! {"task": "send_email", "args": ["a@example.com"], "kwargs": {"subject": "hi"}}
//! ```
//!
//! - `task` (string, required): the name a handler is registered under.
//! - `args` (array, optional, default `[]`): positional arguments.
//! - `kwargs` (object, optional, default `{}`): named arguments.
//!
//! Any other member is kept in the payload and ignored by the workers (room
//! for what an application needs, such as a trace id). Python calls its
//! handler as `fn(*args, **kwargs)`; Node and Rust handlers receive
//! `args[0]` as the payload, with `args` and `kwargs` whole beside it. A SQL
//! producer enqueues a task by writing the envelope:
//!
//! ```sql
//! SELECT honker_enqueue('emails', json_object('task', 'send_email',
//!        'args', json_array('a@example.com')));
//! ```

use crate::error::{Error, Result};
use serde::Deserialize;

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    task: std::borrow::Cow<'a, str>,
}

/// The task named by a job payload, or why the payload is not an envelope.
pub fn task_of(payload: &str) -> std::result::Result<String, String> {
    match serde_json::from_str::<Head<'_>>(payload) {
        Ok(h) if h.task.is_empty() => Err("the envelope's \"task\" is empty".into()),
        Ok(h) => Ok(h.task.into_owned()),
        Err(e) => Err(format!(
            "the payload is not a task envelope ({{\"task\": \"name\", \"args\": [...], \"kwargs\": {{...}}}}): {e}"
        )),
    }
}

/// The envelope for task `task` with positional `args` (JSON text of an
/// array, or `None` for none) and named `kwargs` (JSON text of an object,
/// or `None`).
pub fn encode(task: &str, args: Option<&str>, kwargs: Option<&str>) -> Result<String> {
    crate::validate::name("task", task)?;
    let check = |what: &'static str, text: &str, array: bool| -> Result<()> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| Error::InvalidJson {
            name: what,
            reason: e.to_string(),
        })?;
        let ok = if array { v.is_array() } else { v.is_object() };
        if !ok {
            return Err(Error::invalid(
                what,
                if array {
                    "must be a JSON array"
                } else {
                    "must be a JSON object"
                },
            ));
        }
        Ok(())
    };
    let mut out = String::with_capacity(32 + task.len() + args.map_or(0, str::len));
    out.push_str("{\"task\":");
    out.push_str(&serde_json::to_string(task).expect("a string serializes"));
    if let Some(a) = args {
        check("args", a, true)?;
        out.push_str(",\"args\":");
        out.push_str(a.trim());
    }
    if let Some(k) = kwargs {
        check("kwargs", k, false)?;
        out.push_str(",\"kwargs\":");
        out.push_str(k.trim());
    }
    out.push('}');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let e = encode("add", Some("[1, 2]"), Some(r#"{"c":3}"#)).unwrap();
        assert_eq!(e, r#"{"task":"add","args":[1, 2],"kwargs":{"c":3}}"#);
        assert_eq!(task_of(&e).unwrap(), "add");
        assert_eq!(encode("x", None, None).unwrap(), r#"{"task":"x"}"#);
        assert_eq!(task_of(r#"{"args":[],"task":"t\"q"}"#).unwrap(), "t\"q");
        assert!(task_of("[1]").unwrap_err().contains("not a task envelope"));
        assert!(task_of(r#"{"task":""}"#).unwrap_err().contains("empty"));
        assert!(task_of(r#"{"task":5}"#).is_err());
        assert_eq!(
            encode("", None, None).unwrap_err().code(),
            "invalid_argument"
        );
        assert_eq!(
            encode("a", Some("{}"), None).unwrap_err().code(),
            "invalid_argument"
        );
        assert_eq!(
            encode("a", Some("[1"), None).unwrap_err().code(),
            "invalid_json"
        );
        assert_eq!(
            encode("a", None, Some("[]")).unwrap_err().code(),
            "invalid_argument"
        );
    }
}
