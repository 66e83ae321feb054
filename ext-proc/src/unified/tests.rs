use super::*;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

#[test]
fn the_gateway_token_comes_from_bearer_or_x_gateway_token() {
    assert_eq!(
        credential(&headers(&[("authorization", "Bearer k1")])),
        Ok("k1")
    );
    assert_eq!(
        credential(&headers(&[("authorization", "bearer  k1 ")])),
        Ok("k1")
    );
    assert_eq!(credential(&headers(&[("x-gateway-token", "k2")])), Ok("k2"));
    // The same token twice is fine; two different ones are refused.
    assert_eq!(
        credential(&headers(&[
            ("authorization", "Bearer k"),
            ("x-gateway-token", "k")
        ])),
        Ok("k")
    );
    let code = |h: &[(&str, &str)]| credential(&headers(h)).unwrap_err().kind;
    assert_eq!(
        code(&[("authorization", "Bearer a"), ("x-gateway-token", "b")]),
        ErrorKind::AmbiguousCredentials
    );
    assert_eq!(code(&[]), ErrorKind::MissingCredential);
    assert_eq!(
        code(&[("authorization", "Basic eA==")]),
        ErrorKind::InvalidCredential
    );
    assert_eq!(
        code(&[("authorization", "Bearer k"), ("x-aigw-upstream", "http")]),
        ErrorKind::InternalHeader
    );
}

#[test]
fn errors_carry_the_gateway_shape_and_param() {
    let e = GatewayError::new(ErrorKind::UnsupportedParameter, "no").with_param("n");
    let r = error_response(&e);
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
    assert_eq!(v["error"]["param"], "n");
    assert_eq!(v["error"]["code"], "unsupported_parameter");
    assert_eq!(v["source"], "gateway");
}
