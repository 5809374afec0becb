//! A proptest strategy for JSON values, shared by the unit tests that compare a hand-written
//! reading of JSON with serde_json's.

use proptest::prelude::*;
use serde_json::Value;

/// Values nested up to three levels, with object keys from `keys` and strings from the
/// regex `strings`.
pub fn json_value(
    keys: impl Strategy<Value = String> + Clone + 'static,
    strings: &'static str,
) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        strings.prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 5, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::vec((keys.clone(), inner), 0..5)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}
