//! Unit tests of the `tools/list` filter's framing: JSON and SSE read from the bytes, kept byte
//! for byte where nothing changes, refused where they cannot be read.

use super::*;

fn no_secret(t: &serde_json::Value) -> bool {
    !t["name"].as_str().unwrap_or_default().starts_with("secret")
}

const LIST: &str = r#"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"echo","inputSchema":{"type":"object"}},{"name":"secret_x"},{"name":"add"}],"nextCursor":"c"}}"#;
const FILTERED: &str = r#"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"echo","inputSchema":{"type":"object"}},{"name":"add"}],"nextCursor":"c"}}"#;

/// Feeds `input` in pieces of `size` bytes; returns what was sent (a replacement shows as
/// `<reason>`) and the first refusal, if any.
fn run(declared_sse: bool, input: &[u8], size: usize) -> (String, Option<Unreadable>) {
    let mut f = ToolsFilter::new(declared_sse);
    let mut out = Vec::new();
    let mut refused = None;
    let mut replace = |why: Unreadable| {
        refused.get_or_insert(why);
        format!("<{why}>").into_bytes()
    };
    let pieces: Vec<&[u8]> = input.chunks(size.max(1)).collect();
    for (i, piece) in pieces.iter().enumerate() {
        let sent = f.chunk(
            Some(&Bytes::copy_from_slice(piece)),
            i + 1 == pieces.len(),
            &no_secret,
            &mut replace,
        );
        out.extend_from_slice(&sent.unwrap_or_default());
    }
    if pieces.is_empty() {
        let sent = f.chunk(None, true, &no_secret, &mut replace);
        out.extend_from_slice(&sent.unwrap_or_default());
    }
    (String::from_utf8_lossy(&out).into_owned(), refused)
}

#[test]
fn json_is_read_from_the_bytes_whatever_the_header_says() {
    for declared_sse in [false, true] {
        for size in [1, 7, 4096] {
            assert_eq!(
                run(declared_sse, LIST.as_bytes(), size),
                (FILTERED.into(), None)
            );
        }
    }
    // Leading and trailing JSON whitespace is read, not refused (the filtered message is
    // written without it).
    let spaced = format!(" \r\n\t{LIST}\n  ");
    assert_eq!(run(false, spaced.as_bytes(), 5), (FILTERED.into(), None));
    // A leading BOM is kept; what follows is filtered.
    let bom = format!("\u{feff}{LIST}");
    assert_eq!(
        run(false, bom.as_bytes(), 1),
        (format!("\u{feff}{FILTERED}"), None)
    );
    // An answer with nothing to remove passes byte for byte, spacing included.
    let kept = format!(" {} ", LIST.replace("secret_x", "other"));
    assert_eq!(run(false, kept.as_bytes(), 3), (kept.clone(), None));
    // Empty and whitespace-only bodies list nothing.
    assert_eq!(run(false, b"", 1), (String::new(), None));
    assert_eq!(run(false, b" \n", 1), (" \n".into(), None));
}

#[test]
fn sse_is_read_from_the_bytes_and_filtered_event_by_event() {
    let stream = format!(
        ": primed\n\nid: 1\nevent: message\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}}\n\nid: 2\nevent: message\ndata: {LIST}\n\n"
    );
    let want = stream.replace(LIST, FILTERED);
    for declared_sse in [true, false] {
        for size in [1, 7, 64, 100_000] {
            assert_eq!(
                run(declared_sse, stream.as_bytes(), size),
                (want.clone(), None)
            );
        }
    }
    // A BOM before the stream (an SSE decoder drops one) is passed on, the rest filtered.
    let bom = format!("\u{feff}{stream}");
    assert_eq!(
        run(true, bom.as_bytes(), 2),
        (format!("\u{feff}{want}"), None)
    );
    // Lone CR line endings end lines for an SSE client, so here too.
    let cr = format!("id: 2\revent: message\rdata: {LIST}\r\r");
    assert_eq!(
        run(true, cr.as_bytes(), 9),
        (cr.replace(LIST, FILTERED), None)
    );
    // Empty data (a priming event) and `data` without a colon are fine.
    let priming = "id: 0\ndata\n\nretry: 100\ndata: \n\n";
    assert_eq!(run(true, priming.as_bytes(), 4), (priming.into(), None));
    assert_eq!(
        sse_lines("a\r\nb\nc\rd"),
        ["a\r\n", "b\n", "c\r", "d"],
        "every line keeps its own ending"
    );
}

#[test]
fn pretty_printed_answers_over_several_data_lines_stay_valid_sse() {
    let pretty = "{\n  \"jsonrpc\": \"2.0\",\n  \"id\": 3,\n  \"result\": {\"tools\": [\n    {\"name\": \"echo\"},\n    {\"name\": \"secret_x\"}\n  ]}\n}";
    let event: String = pretty
        .lines()
        .map(|l| format!("data: {l}\r\n"))
        .collect::<String>()
        + "\r\n";
    let (out, refused) = run(true, event.as_bytes(), 10);
    assert_eq!(refused, None);
    assert!(
        out.lines().all(|l| l.is_empty() || l.starts_with("data: ")),
        "{out}"
    );
    let data: String = out
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect::<Vec<_>>()
        .join("\n");
    let v: serde_json::Value = serde_json::from_str(&data).unwrap_or_default();
    assert_eq!(
        v["result"]["tools"],
        serde_json::json!([{"name": "echo"}]),
        "{out}"
    );
    assert!(out.ends_with("\r\n\r\n"));
}

#[test]
fn unreadable_json_answers_are_refused_whole() {
    let cases: Vec<(String, Unreadable)> = vec![
        (
            LIST.replace("\"result\"", "\"Result\""),
            Unreadable::MemberCase,
        ),
        (
            LIST.replace("\"tools\"", "\"TOOLS\""),
            Unreadable::MemberCase,
        ),
        (
            LIST.replace("\"tools\"", "\"toolſ\""),
            Unreadable::MemberCase,
        ),
        (
            LIST.replace("{\"name\":\"secret_x\"}", "{\"Name\":\"secret_x\"}"),
            Unreadable::MemberCase,
        ),
        (
            LIST.replace(
                "{\"name\":\"add\"}",
                "{\"name\":\"add\",\"Description\":\"x\"}",
            ),
            Unreadable::MemberCase,
        ),
        (
            LIST.replace("\"jsonrpc\"", "\"JSONRPC\""),
            Unreadable::MemberCase,
        ),
        (
            LIST.replace("\"id\":3,", "\"id\":3,\"result\":{},"),
            Unreadable::DuplicateMember,
        ),
        (
            LIST.replace(",\"nextCursor\"", ",\"tools\":[],\"nextCursor\""),
            Unreadable::DuplicateMember,
        ),
        (
            LIST.replace(
                "{\"name\":\"add\"}",
                "{\"name\":\"add\",\"name\":\"secret_y\"}",
            ),
            Unreadable::DuplicateMember,
        ),
        (
            LIST.replace(
                "{\"name\":\"add\"}",
                "{\"name\":\"add\",\"NAME\":\"secret_y\"}",
            ),
            Unreadable::DuplicateMember,
        ),
        (
            LIST.replace("\"type\":\"object\"", "\"type\":\"object\",\"Type\":1"),
            Unreadable::DuplicateMember,
        ),
        (format!("{LIST}{LIST}"), Unreadable::NotJson),
        (format!("{LIST} x"), Unreadable::NotJson),
        (LIST.replace("}]", "},]"), Unreadable::NotJson),
        (LIST.replace("\"2.0\"", "\"1.0\""), Unreadable::NotJsonRpc),
        (
            LIST.replace("\"jsonrpc\":\"2.0\",", ""),
            Unreadable::NotJsonRpc,
        ),
        (LIST.replace("\"id\":3,", ""), Unreadable::NotJsonRpc),
        (
            LIST.replace("\"id\":3", "\"id\":3,\"method\":\"x\""),
            Unreadable::NotJsonRpc,
        ),
        (
            LIST.replace("\"id\":3", "\"id\":3,\"error\":{}"),
            Unreadable::NotJsonRpc,
        ),
        (
            LIST.replace("\"tools\":[", "\"tools\":{\"a\":[")
                .replace("],\"next", "]},\"next"),
            Unreadable::NotJsonRpc,
        ),
        ("[]".to_string(), Unreadable::NotJsonRpc),
        (
            format!("[{LIST},{}]", LIST.replace("\"result\"", "\"Result\"")),
            Unreadable::MemberCase,
        ),
    ];
    for (body, why) in cases {
        for declared_sse in [false, true] {
            assert_eq!(
                run(declared_sse, body.as_bytes(), 5),
                (format!("<{why}>"), Some(why)),
                "{body}"
            );
        }
    }
    // A second BOM is not JSON whitespace: read as SSE, whose first line is no field.
    let twice = format!("\u{feff}\u{feff}{LIST}");
    assert_eq!(
        run(false, twice.as_bytes(), 2),
        ("\u{feff}<sse_syntax>".into(), Some(Unreadable::SseSyntax))
    );
    let mut latin1 = LIST.as_bytes().to_vec();
    latin1.insert(40, 0xE9);
    assert_eq!(
        run(false, &latin1, 5),
        ("<not_utf8>".into(), Some(Unreadable::NotUtf8))
    );
}

#[test]
fn batches_are_filtered_message_by_message() {
    let batch = format!(r#"[{LIST},{{"jsonrpc":"2.0","id":4,"result":{{}}}}]"#);
    let (out, refused) = run(false, batch.as_bytes(), 3);
    assert_eq!(refused, None);
    assert_eq!(
        out,
        format!(r#"[{FILTERED},{{"jsonrpc":"2.0","id":4,"result":{{}}}}]"#)
    );
}

#[test]
fn unreadable_sse_events_are_replaced_and_the_stream_read_on() {
    let good = "id: 1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n";
    let cases: Vec<(String, Unreadable)> = vec![
        (format!("Data: {LIST}\n\n"), Unreadable::SseSyntax),
        (format!(" data: {LIST}\n\n"), Unreadable::SseSyntax),
        (format!("data : {LIST}\n\n"), Unreadable::SseSyntax),
        (format!("data: \u{feff}{LIST}\n\n"), Unreadable::NotJson),
        ("data: hello\n\n".to_string(), Unreadable::NotJson),
        (
            "event: ping\ndata: hello\n\n".to_string(),
            Unreadable::NotJson,
        ),
        (
            format!("data: {}\n\n", LIST.replace("\"result\"", "\"rEsult\"")),
            Unreadable::MemberCase,
        ),
        (
            format!(
                "data: {}\n\n",
                LIST.replace(
                    "{\"name\":\"add\"}",
                    "{\"name\":\"add\",\"name\":\"secret_y\"}"
                )
            ),
            Unreadable::DuplicateMember,
        ),
    ];
    for (bad, why) in cases {
        let stream = format!("{good}{bad}id: 9\ndata: {LIST}\n\n");
        let want = format!("{good}<{why}>id: 9\ndata: {FILTERED}\n\n");
        for size in [1, 13, 100_000] {
            assert_eq!(
                run(true, stream.as_bytes(), size),
                (want.clone(), Some(why)),
                "{stream:?}"
            );
        }
    }
    // Cut inside the result event: the incomplete event is not passed either.
    let cut = format!("{good}data: {}", &LIST[..60]);
    assert_eq!(
        run(true, cut.as_bytes(), 7),
        (format!("{good}<not_json>"), Some(Unreadable::NotJson))
    );
}

#[test]
fn holding_is_bounded() {
    let mut refused = Vec::new();
    let mut replace = |why: Unreadable| {
        refused.push(why);
        b"<>".to_vec()
    };
    let mut g = ToolsFilter::new(false);
    let big = Bytes::from(vec![b' '; HOLD_LIMIT + 1]);
    let sent = g.chunk(Some(&big), false, &no_secret, &mut replace);
    assert_eq!(sent.as_deref(), Some(b"<>".as_slice()));
    let rest = g.chunk(
        Some(&Bytes::from_static(b"{}")),
        true,
        &no_secret,
        &mut replace,
    );
    assert_eq!(rest, None, "the rest is dropped");
    let mut h = ToolsFilter::new(true);
    let mut event = b"data: ".to_vec();
    event.extend(std::iter::repeat_n(b'x', HOLD_LIMIT));
    assert!(h
        .chunk(Some(&Bytes::from(event)), false, &no_secret, &mut replace)
        .is_some());
    assert_eq!(refused, [Unreadable::TooLarge, Unreadable::TooLarge]);
}

/// The hold limit bounds each SSE event, not each chunk: a stream of small events passes
/// whatever chunks it comes in (one chunk larger than the limit used to be refused whole, the
/// same events in small chunks passed), and an event larger than the limit is refused either way.
/// Found with the fuzz target `tools_filter`'s split property (at a size its inputs cannot reach).
#[test]
fn the_hold_limit_bounds_events_whatever_the_chunks() {
    let event = format!(": {}\n\n", "k".repeat(1000));
    let stream = event.repeat(HOLD_LIMIT / event.len() + 100);
    assert!(stream.len() > HOLD_LIMIT);
    for size in [stream.len(), 64 * 1024] {
        assert_eq!(
            run(true, stream.as_bytes(), size),
            (stream.clone(), None),
            "{size}"
        );
    }
    let big = format!("data: {}\n\n{event}", "x".repeat(HOLD_LIMIT));
    for size in [big.len(), 64 * 1024] {
        let (out, refused) = run(true, big.as_bytes(), size);
        assert_eq!(
            (out.as_str(), refused),
            ("<too_large>", Some(Unreadable::TooLarge)),
            "{size}"
        );
    }
}

#[test]
fn a_filtered_event_whose_data_line_ended_in_a_lone_cr_still_ends() {
    // A result spread over two `data:` lines, the first ending in a lone `\r`, then the blank
    // line; a notification event after it. Written back with `\r` endings, the blank line's `\n`
    // would join the last `\r` into one break, and the next event's data would run into this one.
    let input = "data: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"tools\":[{\"name\":\"echo\"},{\"name\":\"secret_x\"}],\r\
                 data:   \"nextCursor\":\"c\"}}\n\n\
                 data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{}}\n\n";
    for size in [1, 7, input.len()] {
        let (out, refused) = run(true, input.as_bytes(), size);
        assert_eq!(refused, None, "{out:?}");
        assert!(!out.contains("secret_x"), "{out:?}");
        // The filter's own output reads back as the same events, unchanged.
        let (again, refused) = run(true, out.as_bytes(), size);
        assert_eq!(refused, None, "the output reads back: {again:?}");
        assert_eq!(again, out);
        assert!(
            out.ends_with("data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{}}\n\n"),
            "{out:?}"
        );
    }
}

/// Feeds `input` in pieces of `size` bytes to a filter keeping `declared` bytes; returns what
/// was sent, or the length error.
fn run_kept(input: &[u8], declared: usize, size: usize) -> Result<Vec<u8>, LengthExceeded> {
    let mut f = ToolsFilter::new(false).with_length(declared);
    let mut replace = |why: Unreadable| format!("{{\"refused\":\"{why}\"}}").into_bytes();
    let mut out = Vec::new();
    let pieces: Vec<&[u8]> = input.chunks(size.max(1)).collect();
    for (i, piece) in pieces.iter().enumerate() {
        let end = i + 1 == pieces.len();
        let sent = f.chunk(
            Some(&Bytes::copy_from_slice(piece)),
            end,
            &no_secret,
            &mut replace,
        );
        out.extend_from_slice(&f.fit(sent, end)?.unwrap_or_default());
    }
    Ok(out)
}

#[test]
fn a_kept_length_is_kept_exactly() {
    for size in [1, 7, 4096] {
        // Nothing to remove: the answer passes byte for byte, with no padding.
        let plain = r#"{"jsonrpc":"2.0","id":3,"result":{"content":[]}}"#;
        assert_eq!(
            run_kept(plain.as_bytes(), plain.len(), size).as_deref(),
            Ok(plain.as_bytes())
        );
        // A filtered answer is shorter: padded with line feeds to the declared length, and
        // reads as the filtered message.
        let sent = run_kept(LIST.as_bytes(), LIST.len(), size).expect("fits");
        assert_eq!(sent.len(), LIST.len());
        assert_eq!(&sent[..FILTERED.len()], FILTERED.as_bytes());
        assert!(sent[FILTERED.len()..].iter().all(|b| *b == b'\n'));
        let read: serde_json::Value = serde_json::from_slice(&sent).expect("JSON");
        assert_eq!(
            read,
            serde_json::from_str::<serde_json::Value>(FILTERED).unwrap()
        );
        // An unreadable answer is replaced, and the replacement padded.
        let bad = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{{}}}}{}",
            " x".repeat(40)
        );
        let sent = run_kept(bad.as_bytes(), bad.len(), size).expect("fits");
        assert_eq!(sent.len(), bad.len());
        assert!(sent.starts_with(br#"{"refused":"not_json"}"#));
    }
}

#[test]
fn a_replacement_longer_than_the_kept_length_is_an_error() {
    let bad = b"{nope}";
    assert_eq!(
        run_kept(bad, bad.len(), 3),
        Err(LengthExceeded {
            sent: r#"{"refused":"not_json"}"#.len(),
            declared: bad.len()
        })
    );
    // Without a kept length, `fit` changes nothing.
    let mut f = ToolsFilter::new(false);
    let chunk = Some(Bytes::from_static(b"abc"));
    assert_eq!(f.fit(chunk.clone(), true), Ok(chunk));
    assert_eq!(f.fit(None, true), Ok(None));
}
