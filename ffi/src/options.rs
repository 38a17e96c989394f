//! Keyspace options given to the writer as JSON, mirroring the `options`
//! object of `floe inspect --json` (format-spec §5.2), so options read from
//! one archive can be given to a writer unchanged. The parser is the core's
//! (`floe_core::engine::options_from_json`, over
//! `KeyspaceOptions::from_json`, next to the `to_json` that renders them);
//! this only maps its refusal to a status.

use crate::error::{FResult, Fail};
use floe_core::format::options::KeyspaceOptions;

/// Parses an options object. Absent keys keep the engine's defaults; any
/// refusal is `FLOE_INVALID_ARGUMENT`, with the core's message (it names the
/// keyspace and the option, and says what is valid).
pub(crate) fn parse(keyspace: &str, json: &str) -> FResult<KeyspaceOptions> {
    floe_core::engine::options_from_json(keyspace, json).map_err(|e| Fail::invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_invalid_arguments_with_the_core_message() {
        let e = parse("k", r#"{"nope": 1}"#).unwrap_err();
        assert_eq!(e.status, crate::floe_status::FLOE_INVALID_ARGUMENT);
        assert!(e.message.starts_with("keyspace 'k': unknown option 'nope' (supported: "), "{}", e.message);
        assert_eq!(parse("k", "null").unwrap(), KeyspaceOptions::default());
    }
}
