//! The token endpoints: `POST /v1.0/oauth2/accessToken` (new style) and `GET /gettoken`
//! (oapi), with the credentials checked, the token-failure fault, and token lifetimes.

use super::*;

pub(crate) fn issue_token(
    shared: &Shared,
    key: Option<&str>,
    secret: Option<&str>,
    oapi: bool,
) -> Response {
    if key != Some(&shared.config.client_id) || secret != Some(&shared.config.client_secret) {
        return if oapi {
            oapi_error(40096, "不合法的appKey或appSecret")
        } else {
            api_error(
                StatusCode::BAD_REQUEST,
                "invalidClientIdOrSecret",
                "无效的clientId或者clientSecret",
            )
        };
    }
    let mut st = shared.lock();
    if st.faults.token_failures > 0 {
        st.faults.token_failures -= 1;
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "token service unavailable",
        )
            .into_response();
    }
    let n = shared.next(&mut st);
    let token = format!("sim-token-{n}");
    st.tokens
        .insert(token.clone(), Instant::now() + shared.config.token_ttl);
    st.snap.tokens_issued += 1;
    drop(st);
    shared.changed();
    let ttl = shared.config.token_ttl.as_secs();
    if oapi {
        ok_json(json!({"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": ttl}))
    } else {
        ok_json(json!({"accessToken": token, "expireIn": ttl}))
    }
}

pub(crate) fn token_valid(st: &State, token: Option<&str>) -> bool {
    token
        .and_then(|t| st.tokens.get(t))
        .is_some_and(|exp| Instant::now() < *exp)
}
