//! Unit tests of the strict answer reading.

use super::*;

fn all(_: &serde_json::Value) -> bool {
    true
}

#[test]
fn folds_match_a_case_insensitive_decoder() {
    assert_eq!(fold("ReSuLt"), "result");
    assert_eq!(fold("toolſ"), "tools");
    assert_eq!(fold("\u{212a}ey"), "key", "the Kelvin sign folds to k");
    assert!(other_case("Name", TOOL).is_err());
    assert!(other_case("nameX", TOOL).is_ok());
    assert!(other_case("inputschema", TOOL).is_err());
    assert!(other_case("inputSchema", TOOL).is_ok());
}

#[test]
fn readable_messages_that_list_nothing_are_unchanged() {
    for ok in [
        r#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
        r#"{"jsonrpc":"2.0","id":1,"result":[1,2]}"#,
        r#"{"jsonrpc":"2.0","id":"a","error":{"code":-32601,"message":"no"}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#,
        r#"{"jsonrpc":"2.0","id":7,"method":"sampling/createMessage","params":{}}"#,
        r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a","extra":{"x":1,"X":[]}}]}}"#,
    ] {
        let got = filter_json(ok.as_bytes(), &all);
        if ok.contains("\"X\"") {
            assert_eq!(
                got,
                Err(Unreadable::DuplicateMember),
                "as in requests: {ok}"
            );
        } else {
            assert_eq!(got, Ok(None), "{ok}");
        }
    }
}

#[test]
fn sse_fields_are_read_exactly() {
    assert_eq!(
        event_data(&["id: 1\n", "data: a\n", "data:b\n", "data\n", ": c\n", "\n"]),
        Ok(Some(("a\nb\n".to_string(), 1)))
    );
    assert_eq!(event_data(&["retry: 5\n", "event: x\n"]), Ok(None));
    for bad in [
        "DATA: x\n",
        "Data:x\n",
        "\tdata: x\n",
        "datum: x\n",
        "dataſ: x\n",
    ] {
        assert_eq!(event_data(&[bad]), Err(Unreadable::SseSyntax), "{bad:?}");
    }
    assert_eq!(Unreadable::ALL.len(), 9);
    let names: std::collections::BTreeSet<_> = Unreadable::ALL.iter().map(|u| u.as_str()).collect();
    assert_eq!(names.len(), Unreadable::ALL.len(), "one label value each");
}
