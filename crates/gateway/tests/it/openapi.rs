//! The OpenAPI document is the contract: the committed `docs/openapi.json` is exactly what the
//! gateway serves, so every API change shows in review. Regenerate with `just openapi`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[test]
fn the_committed_document_is_the_served_one() {
    let committed: serde_json::Value =
        serde_json::from_str(include_str!("../../../../docs/openapi.json"))
            .expect("docs/openapi.json is JSON");
    let served = serde_json::to_value(gateway::openapi()).unwrap();
    assert!(
        committed == served,
        "docs/openapi.json is stale: run `just openapi` (cargo run -- openapi > docs/openapi.json) and commit it"
    );
}
