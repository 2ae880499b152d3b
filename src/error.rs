//! The plain text of an error, as the module raises and returns it. A leaf module: the engine,
//! the crossings, the stores and the JSON module all turn mlua's errors into text with it.

use mlua::prelude::*;

/// The plain text of an error: no mlua wrapping, no traceback.
pub fn message(e: &LuaError) -> String {
    let text = match e {
        LuaError::CallbackError { cause, .. } => return message(cause),
        LuaError::RuntimeError(m) => m.clone(),
        LuaError::MemoryError(_) => "honeymoon_session: not enough memory".to_string(),
        other => other.to_string(),
    };
    match text.split_once("\nstack traceback:") {
        Some((m, _)) => m.to_string(),
        None => text,
    }
}
