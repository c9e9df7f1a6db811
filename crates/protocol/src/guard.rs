//! Pre-parse guard for device-supplied plists.
//!
//! The `plist` crate recurses once per `<array>`/`<dict>` level with no limit: a few kilobytes of nested
//! `<array>` overflow the stack and abort the whole process (not a catchable panic). [`check_xml_plist`]
//! runs first, as a single linear pass with no recursion and no allocation, and refuses anything `plist`
//! could recurse on too deeply.
//!
//! Guarantee: if `check_xml_plist(body, d, _)` returns `Ok`, the XML tokenizer `plist` uses (quick-xml,
//! configured as `plist` configures it) never sees more than `d` open `<array>`/`<dict>` elements at once
//! before it finishes or reports an error. The scanner mirrors quick-xml's rules for where markup ends
//! (quoted attribute values, `-->`, `]]>`, `?>`, DOCTYPE quotes); where it cannot mirror them cheaply
//! (a DTD internal subset) it refuses the body. It is tested differentially against quick-xml.

use crate::error::ProtocolError;

/// Deepest `<array>`/`<dict>` nesting accepted; real check-ins and reports nest 3 or 4 levels.
pub const DEFAULT_MAX_DEPTH: usize = 32;
/// Largest body accepted on device endpoints.
pub const DEFAULT_MAX_BODY: usize = 8 * 1024 * 1024;

/// Linear byte scan (no recursion) run BEFORE plist parsing: refuses empty bodies, bodies over `max_body`,
/// binary plists ("bplist" magic) and anything that is not XML text, and `<array>`/`<dict>` nesting deeper than
/// `max_depth`. Handles self-closing `<array/>`/`<dict/>`, comments, `<?xml …?>`, `<!DOCTYPE …>`, CDATA,
/// whitespace inside tags, and unbalanced closing tags (error). Must be O(n), no allocation per tag.
///
/// A self-closing `<array/>` counts as one level while it is open (plist enters and leaves it), so it is
/// refused when it sits at `max_depth` already. Bodies must be UTF-8 without NUL bytes (plist's XML reader
/// only reads UTF-8), may start with a UTF-8 BOM and whitespace, and must then start with `<`.
pub fn check_xml_plist(
    body: &[u8],
    max_depth: usize,
    max_body: usize,
) -> Result<(), ProtocolError> {
    if body.is_empty() {
        return Err(ProtocolError::Empty);
    }
    if body.len() > max_body {
        return Err(ProtocolError::TooLarge {
            size: body.len(),
            limit: max_body,
        });
    }
    if body.starts_with(b"bplist") || body.contains(&0) || std::str::from_utf8(body).is_err() {
        return Err(ProtocolError::NotXml);
    }
    let text = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    match text.iter().find(|b| !is_whitespace(**b)) {
        Some(b'<') => {}
        _ => return Err(ProtocolError::NotXml),
    }
    scan_depth(text, max_depth)
}

/// Walks the markup of `b`, tracking how many `<array>`/`<dict>` elements are open.
fn scan_depth(b: &[u8], max_depth: usize) -> Result<(), ProtocolError> {
    let mut depth = 0usize;
    let mut pos = 0usize;
    while let Some(lt) = find_byte(b, pos, b'<') {
        pos = match b.get(lt + 1) {
            None => return Err(malformed("markup cut off at the end of the body")),
            Some(b'!') => skip_bang(b, lt)?,
            Some(b'?') => skip_processing_instruction(b, lt)?,
            Some(b'/') => {
                let gt = tag_end(b, lt)?;
                if is_collection(closing_name(&b[lt + 2..gt])) {
                    depth = depth.checked_sub(1).ok_or_else(|| {
                        malformed("closing </array> or </dict> without a matching opening tag")
                    })?;
                }
                gt + 1
            }
            Some(_) => {
                let gt = tag_end(b, lt)?;
                let inner = &b[lt + 1..gt];
                let (inner, self_closing) = match inner.strip_suffix(b"/") {
                    Some(rest) => (rest, true),
                    None => (inner, false),
                };
                if is_collection(opening_name(inner)) {
                    // An <array/> is entered and left at once, but it is still one level deeper while open.
                    if depth >= max_depth {
                        return Err(ProtocolError::TooDeep { limit: max_depth });
                    }
                    if !self_closing {
                        depth += 1;
                    }
                }
                gt + 1
            }
        };
    }
    if depth != 0 {
        return Err(malformed("body ends inside an unclosed <array> or <dict>"));
    }
    Ok(())
}

/// Skips `<!-- … -->`, `<![CDATA[ … ]]>` or `<!DOCTYPE …>` starting at `lt`; returns the index after it.
fn skip_bang(b: &[u8], lt: usize) -> Result<usize, ProtocolError> {
    let rest = &b[lt..];
    if rest.starts_with(b"<!--") {
        // quick-xml: the first '>' at least 6 bytes after '<' that follows "--" (so `<!-->` is not closed).
        let mut from = lt + 4;
        while let Some(gt) = find_byte(b, from, b'>') {
            if gt >= lt + 6 && &b[gt - 2..gt] == b"--" {
                return Ok(gt + 1);
            }
            from = gt + 1;
        }
        return Err(malformed("unclosed comment"));
    }
    if rest.starts_with(b"<![CDATA[") {
        let mut from = lt + 9;
        while let Some(gt) = find_byte(b, from, b'>') {
            if &b[gt - 2..gt] == b"]]" {
                return Ok(gt + 1);
            }
            from = gt + 1;
        }
        return Err(malformed("unclosed CDATA section"));
    }
    if rest.len() >= 9 && rest[..9].eq_ignore_ascii_case(b"<!DOCTYPE") {
        // Quoted public/system ids may contain '>' and '['; outside quotes, '[' opens an internal
        // subset (entity declarations), which a plist never needs and which is refused outright.
        let mut quote = None;
        for (i, &c) in b.iter().enumerate().skip(lt + 9) {
            match (quote, c) {
                (Some(q), _) if c == q => quote = None,
                (Some(_), _) => {}
                (None, b'"' | b'\'') => quote = Some(c),
                (None, b'[') => return Err(malformed("DOCTYPE internal subsets are not accepted")),
                (None, b'>') => return Ok(i + 1),
                (None, _) => {}
            }
        }
        return Err(malformed("unclosed DOCTYPE"));
    }
    Err(malformed(
        "unsupported <! markup (only comments, CDATA and DOCTYPE are allowed)",
    ))
}

/// Skips `<? … ?>` starting at `lt`; like quick-xml, the `?` right after `<` may close it (`<?>`).
fn skip_processing_instruction(b: &[u8], lt: usize) -> Result<usize, ProtocolError> {
    let mut from = lt + 2;
    while let Some(gt) = find_byte(b, from, b'>') {
        if b[gt - 1] == b'?' {
            return Ok(gt + 1);
        }
        from = gt + 1;
    }
    Err(malformed(
        "unclosed processing instruction or XML declaration",
    ))
}

/// Index of the `>` closing the tag that starts at `lt`; a `>` inside a quoted attribute value does not count.
fn tag_end(b: &[u8], lt: usize) -> Result<usize, ProtocolError> {
    let mut quote = None;
    for (i, &c) in b.iter().enumerate().skip(lt + 1) {
        match (quote, c) {
            (Some(q), _) if c == q => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') => quote = Some(c),
            (None, b'>') => return Ok(i),
            (None, _) => {}
        }
    }
    Err(malformed("unclosed tag"))
}

/// The element name of an opening tag's inside (`array attr="1"` → `array`), as quick-xml reads it.
fn opening_name(inner: &[u8]) -> &[u8] {
    let len = inner
        .iter()
        .position(|c| is_whitespace(*c))
        .unwrap_or(inner.len());
    &inner[..len]
}

/// The element name of a closing tag's inside (`array ` → `array`): trailing whitespace is ignored.
fn closing_name(inner: &[u8]) -> &[u8] {
    let len = inner
        .iter()
        .rposition(|c| !is_whitespace(*c))
        .map_or(0, |i| i + 1);
    &inner[..len]
}

/// True for the names plist recurses on. Like plist, compares the local name (`x:array` is an array);
/// splitting at the last `:` makes this at least as eager as quick-xml's first-`:` split.
fn is_collection(name: &[u8]) -> bool {
    let local = match name.iter().rposition(|c| *c == b':') {
        Some(i) => &name[i + 1..],
        None => name,
    };
    local == b"array" || local == b"dict"
}

fn find_byte(b: &[u8], from: usize, needle: u8) -> Option<usize> {
    b.get(from..)?
        .iter()
        .position(|c| *c == needle)
        .map(|i| from + i)
}

/// XML whitespace, exactly the set quick-xml uses to end names.
fn is_whitespace(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn malformed(why: &str) -> ProtocolError {
    ProtocolError::Malformed(why.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">"#;

    fn check(body: &str) -> Result<(), ProtocolError> {
        check_xml_plist(body.as_bytes(), DEFAULT_MAX_DEPTH, DEFAULT_MAX_BODY)
    }

    fn nested_arrays(levels: usize) -> String {
        format!(
            "{HEADER}{}{}</plist>",
            "<array>".repeat(levels),
            "</array>".repeat(levels)
        )
    }

    fn nested_dicts(levels: usize) -> String {
        format!(
            "{HEADER}{}<true/>{}</plist>",
            "<dict><key>a</key>".repeat(levels),
            "</dict>".repeat(levels)
        )
    }

    #[test]
    fn hundred_thousand_nested_arrays_are_too_deep_without_crashing() {
        let body = nested_arrays(100_000);
        assert!(matches!(
            check(&body),
            Err(ProtocolError::TooDeep { limit: 32 })
        ));
    }

    #[test]
    fn hundred_thousand_nested_dicts_are_too_deep_without_crashing() {
        let body = nested_dicts(100_000);
        assert!(matches!(
            check(&body),
            Err(ProtocolError::TooDeep { limit: 32 })
        ));
    }

    #[test]
    fn hundred_thousand_unclosed_arrays_are_too_deep() {
        let body = format!("{HEADER}{}", "<array>".repeat(100_000));
        assert!(matches!(check(&body), Err(ProtocolError::TooDeep { .. })));
    }

    #[test]
    fn depth_31_and_32_pass_and_depth_33_is_refused() {
        assert!(check(&nested_arrays(31)).is_ok());
        assert!(check(&nested_dicts(31)).is_ok());
        assert!(check(&nested_arrays(32)).is_ok());
        assert!(matches!(
            check(&nested_arrays(33)),
            Err(ProtocolError::TooDeep { limit: 32 })
        ));
        assert!(matches!(
            check(&nested_dicts(33)),
            Err(ProtocolError::TooDeep { limit: 32 })
        ));
    }

    #[test]
    fn depth_31_nesting_that_passes_the_guard_also_parses() {
        let body = nested_dicts(31);
        assert!(check(&body).is_ok());
        assert!(plist::Value::from_reader_xml(body.as_bytes()).is_ok());
    }

    #[test]
    fn self_closing_collection_at_the_limit_counts_as_one_more_level() {
        let at_limit = format!("{}<array/>{}", "<array>".repeat(2), "</array>".repeat(2));
        assert!(check_xml_plist(at_limit.as_bytes(), 3, 1000).is_ok());
        assert!(matches!(
            check_xml_plist(at_limit.as_bytes(), 2, 1000),
            Err(ProtocolError::TooDeep { limit: 2 })
        ));
    }

    #[test]
    fn self_closing_collections_do_not_accumulate_depth() {
        let body = format!(
            "{HEADER}<array>{}</array></plist>",
            "<array/><dict /><array\n/>".repeat(1000)
        );
        assert!(check(&body).is_ok());
    }

    #[test]
    fn empty_body_is_refused() {
        assert!(matches!(
            check_xml_plist(b"", 32, 100),
            Err(ProtocolError::Empty)
        ));
    }

    #[test]
    fn body_over_the_limit_is_refused_with_its_size() {
        let body = vec![b' '; 101];
        assert!(matches!(
            check_xml_plist(&body, 32, 100),
            Err(ProtocolError::TooLarge {
                size: 101,
                limit: 100
            })
        ));
    }

    #[test]
    fn binary_plist_is_refused() {
        let mut bin = Vec::new();
        plist::Value::Boolean(true)
            .to_writer_binary(&mut bin)
            .unwrap();
        assert!(bin.starts_with(b"bplist"));
        assert!(matches!(
            check_xml_plist(&bin, 32, 1000),
            Err(ProtocolError::NotXml)
        ));
    }

    #[test]
    fn non_xml_text_and_garbage_bytes_are_refused() {
        for body in [
            &b"{ a = (1, 2); }"[..],
            b"hello",
            b"   ",
            b"\xff\xfe<\x00p\x00",
            b"<plist>\x00</plist>",
            b"<plist>\xc3\x28</plist>",
        ] {
            assert!(
                matches!(check_xml_plist(body, 32, 1000), Err(ProtocolError::NotXml)),
                "{body:?}"
            );
        }
    }

    #[test]
    fn bom_and_leading_whitespace_are_accepted() {
        let body = format!("\u{feff}\n  {HEADER}<dict/></plist>");
        assert!(check(&body).is_ok());
    }

    #[test]
    fn markup_inside_comments_cdata_and_declarations_is_not_counted() {
        let deep = "<array>".repeat(100);
        for body in [
            format!("{HEADER}<!--{deep}--><dict/></plist>"),
            format!("{HEADER}<dict><key><![CDATA[{deep}]]></key><true/></dict></plist>"),
            format!("<?pi {deep} ?>{HEADER}<dict/></plist>"),
            format!("<!DOCTYPE plist PUBLIC \"{deep}\" '>{deep}'><plist><dict/></plist>"),
        ] {
            assert!(check(&body).is_ok(), "{body}");
        }
    }

    #[test]
    fn comment_opener_followed_by_gt_does_not_close_the_comment() {
        // quick-xml keeps `<!-->` open; the arrays after it are still comment text.
        let body = format!("{HEADER}<!-->{}--><dict/></plist>", "<array>".repeat(100));
        assert!(check(&body).is_ok());
    }

    #[test]
    fn gt_inside_quoted_attribute_does_not_end_the_tag() {
        let inner = "<array>".repeat(40);
        let body = format!("{HEADER}<dict a=\"{inner}>\" b='>'></dict></plist>");
        assert!(check(&body).is_ok());
        // quick-xml rejects attributes in a closing tag as a name mismatch; the guard refuses it too.
        let closing = format!("{HEADER}<array></array a='>'></plist>");
        assert!(matches!(check(&closing), Err(ProtocolError::Malformed(_))));
    }

    #[test]
    fn whitespace_inside_tags_is_understood() {
        let body = format!(
            "{HEADER}<array\n\t>{}</array\n></plist>",
            "<dict \r\n ></dict\t>"
        );
        assert!(check(&body).is_ok());
        let deep = format!("{}{}", "<array >".repeat(33), "</array >".repeat(33));
        assert!(matches!(check(&deep), Err(ProtocolError::TooDeep { .. })));
    }

    #[test]
    fn namespaced_collections_count_like_plain_ones() {
        let deep = format!("{}{}", "<x:array>".repeat(33), "</x:array>".repeat(33));
        assert!(matches!(check(&deep), Err(ProtocolError::TooDeep { .. })));
    }

    #[test]
    fn unbalanced_closing_tag_is_refused() {
        let body = format!("{HEADER}<array></array></array></plist>");
        assert!(matches!(check(&body), Err(ProtocolError::Malformed(_))));
        assert!(matches!(check("</dict>"), Err(ProtocolError::Malformed(_))));
    }

    #[test]
    fn truncated_markup_is_refused() {
        let full =
            format!("{HEADER}<dict><key>a</key><array><string>x</string></array></dict></plist>");
        for cut in [HEADER.len() + 7, HEADER.len() + 30, full.len() - 10] {
            assert!(
                matches!(check(&full[..cut]), Err(ProtocolError::Malformed(_))),
                "cut at {cut}"
            );
        }
        for body in [
            "<",
            "<dict",
            "<!-- x",
            "<![CDATA[ x",
            "<?xml x",
            "<!DOCTYPE x \"",
            "<a b='>",
        ] {
            assert!(
                matches!(check(body), Err(ProtocolError::Malformed(_))),
                "{body}"
            );
        }
    }

    #[test]
    fn doctype_internal_subset_and_unknown_bang_markup_are_refused() {
        for body in [
            "<!DOCTYPE plist [<!ENTITY x \"y\">]><plist/>",
            "<!ELEMENT x><plist/>",
            "<!x><plist/>",
        ] {
            assert!(
                matches!(check(body), Err(ProtocolError::Malformed(_))),
                "{body}"
            );
        }
    }

    #[test]
    fn error_messages_never_echo_body_bytes() {
        let body = "<dict><key>SECRETVALUE</key><data>SECRETVALUE";
        let err = check(body).unwrap_err().to_string();
        assert!(!err.contains("SECRETVALUE"), "{err}");
    }

    /// Max `<array>`/`<dict>` depth quick-xml (configured like plist) reaches before EOF or its first
    /// error: an upper bound of plist's recursion depth on the same input.
    fn oracle_depth(body: &[u8]) -> usize {
        use quick_xml::events::Event;
        let mut reader = quick_xml::Reader::from_reader(std::io::BufReader::new(body));
        let config = reader.config_mut();
        config.trim_text(false);
        config.check_end_names = true;
        config.expand_empty_elements = true;
        let (mut depth, mut max, mut buf) = (0usize, 0usize, Vec::new());
        loop {
            match reader.read_event_into(&mut buf) {
                Ok(Event::Start(s)) if matches!(s.local_name().as_ref(), "array" | "dict") => {
                    depth += 1;
                    max = max.max(depth);
                }
                Ok(Event::End(e)) if matches!(e.local_name().as_ref(), "array" | "dict") => {
                    depth = depth.saturating_sub(1);
                }
                Ok(Event::Eof) | Err(_) => return max,
                Ok(_) => {}
            }
            buf.clear();
        }
    }

    #[test]
    fn guard_never_accepts_what_quick_xml_would_nest_deeper_than_the_limit() {
        const PIECES: &[&str] = &[
            "<array>",
            "</array>",
            "<dict>",
            "</dict>",
            "<array/>",
            "<dict />",
            "<x:array>",
            "</x:array>",
            "<array ",
            "</array ",
            ">",
            "/>",
            "<!--",
            "-->",
            "--",
            "-",
            "<![CDATA[",
            "]]>",
            "]",
            "<?xml",
            "<?",
            "?>",
            "?",
            "<!DOCTYPE plist ",
            "<!doctype ",
            "[",
            "'",
            "\"",
            "<",
            "</",
            " ",
            "\n",
            "a=",
            "<key>",
            "</key>",
            "<string>",
            "</string>",
            "<plist>",
            "</plist>",
            "x",
            ":",
            "<!",
        ];
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let (mut accepted_deep_enough, mut accepted) = (0, 0);
        for _ in 0..20_000 {
            let len = (next() % 40) as usize;
            let body: String = (0..len)
                .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
                .collect();
            let oracle = oracle_depth(body.as_bytes());
            for limit in 1..=3 {
                if check_xml_plist(body.as_bytes(), limit, 1 << 20).is_ok() {
                    accepted += 1;
                    accepted_deep_enough += usize::from(oracle == limit);
                    assert!(
                        oracle <= limit,
                        "guard accepted depth {oracle} > {limit}: {body:?}"
                    );
                }
            }
        }
        // The generator must actually exercise acceptance, including right at the limit.
        assert!(
            accepted > 1000 && accepted_deep_enough > 100,
            "{accepted} {accepted_deep_enough}"
        );
    }

    #[test]
    fn guard_accepts_well_formed_nesting_exactly_up_to_the_limit() {
        let mut seed: u64 = 42;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            seed >> 33
        };
        for _ in 0..2_000 {
            // A random well-formed tree of arrays and dicts, some empty ones self-closing.
            let (mut body, mut open, mut max) = (String::from("<plist>"), Vec::new(), 0usize);
            for _ in 0..(next() % 60) {
                match next() % 5 {
                    0 | 1 => {
                        let dict = next() % 2 == 0;
                        body.push_str(if dict { "<dict>" } else { "<array>" });
                        open.push(dict);
                        max = max.max(open.len());
                    }
                    2 => {
                        body.push_str(if next() % 2 == 0 {
                            "<array/>"
                        } else {
                            "<dict/>"
                        });
                        max = max.max(open.len() + 1);
                    }
                    _ => {
                        if let Some(dict) = open.pop() {
                            body.push_str(if dict { "</dict>" } else { "</array>" });
                        }
                    }
                }
            }
            while let Some(dict) = open.pop() {
                body.push_str(if dict { "</dict>" } else { "</array>" });
            }
            body.push_str("</plist>");
            assert_eq!(oracle_depth(body.as_bytes()), max, "{body}");
            for limit in [max.saturating_sub(1), max, max + 1] {
                let ok = check_xml_plist(body.as_bytes(), limit, 1 << 20).is_ok();
                assert_eq!(ok, max <= limit, "limit {limit}, depth {max}: {body}");
            }
        }
    }
}
