//! Property tests of the refresh-token decoder: any text, and any secret next to a real session
//! id, is refused with UNAUTHORIZED and changes nothing.
#![allow(clippy::unwrap_used, clippy::panic)]

use crate::common::*;
use domain::{AuthService, Error};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn any_refresh_token_is_refused_without_side_effects(
        junk in ".{0,120}",
        secret in "[A-Za-z0-9_-]{43}|.{0,60}",
    ) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let app = TestApp::new().await;
            let (s, p) = app.user("holder").await;
            let aimed = format!("{}.{secret}", p.session_id.simple());
            for token in [junk.as_str(), aimed.as_str()] {
                let e = app.auth.refresh(&ctx(), token).await.unwrap_err();
                assert!(matches!(e, Error::Unauthorized), "{token:?}: {e:?}");
            }
            assert!(app.session_live(&p).await, "a refused token revoked the session");
            app.auth.refresh(&ctx(), &s.tokens.refresh_token).await.unwrap();
        });
    }
}
