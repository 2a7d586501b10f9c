//! Property tests of the domain's decoders of untrusted input: whatever a client sends, they
//! answer a value or an error, never a panic.
#![allow(clippy::unwrap_used, clippy::panic)]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::{Cursor, CursorValue, RawUserQuery, SortOrder, UserSort};
use proptest::prelude::*;

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        ".{0,20}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[sovi]|.{0,8}", inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn any_text_decodes_to_a_cursor_or_an_error(s in ".{0,200}") {
        let _ = Cursor::decode(&s);
    }

    #[test]
    fn any_base64_json_decodes_to_a_cursor_or_an_error(v in json_value()) {
        let text = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&v).unwrap());
        if let Ok(c) = Cursor::decode(&text) {
            // Whatever decodes is consistent: the value fits the sort, and it round-trips.
            let fits = matches!(
                (&c.sort, &c.value),
                (UserSort::CreatedAt, CursorValue::Time(_))
                    | (UserSort::Username | UserSort::Email, CursorValue::Text(_))
            );
            prop_assert!(fits);
            prop_assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        }
    }

    #[test]
    fn cursors_round_trip(
        text in ".{0,40}",
        micros in any::<i64>(),
        by_time in any::<bool>(),
        desc in any::<bool>(),
        id in any::<u128>(),
    ) {
        let (sort, value) = if by_time {
            (UserSort::CreatedAt, CursorValue::Time(micros))
        } else {
            (UserSort::Username, CursorValue::Text(text))
        };
        let c = Cursor {
            sort,
            order: if desc { SortOrder::Desc } else { SortOrder::Asc },
            value,
            id: uuid::Uuid::from_u128(id),
        };
        prop_assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
    }

    #[test]
    fn any_list_query_parses_or_names_the_bad_parameter(
        page in proptest::option::of(".{0,12}"),
        per_page in proptest::option::of(".{0,12}"),
        sort in proptest::option::of(".{0,12}"),
        order in proptest::option::of(".{0,12}"),
        cursor in proptest::option::of(".{0,60}"),
        created_after in proptest::option::of(".{0,30}"),
    ) {
        let q = RawUserQuery {
            page,
            per_page,
            sort,
            order,
            cursor,
            created_after,
            ..RawUserQuery::default()
        };
        match q.parse() {
            Ok(_) => {}
            Err(domain::Error::Validation(f)) => prop_assert!(!f.is_empty()),
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
    }
}
