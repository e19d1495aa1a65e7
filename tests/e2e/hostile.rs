//! Hostile specs: nothing in a spec makes gwgen panic, overflow its stack or hang.

use gwgen::check_text;

fn op(path: &str, extra: &str) -> String {
    format!(
        "openapi: 3.1.0\ninfo: {{ title: t, version: '1' }}\nx-gateway: {{ defaults: {{ integration: {{ type: mock }}, throttle: {{ rate: 1 }} }} }}\npaths:\n  {path}:\n    get:\n{extra}      responses: {{ '200': {{ description: ok }} }}\n"
    )
}

#[test]
fn schemas_nested_300_deep() {
    let mut schema = String::from("{\"type\":\"string\"}");
    for _ in 0..300 {
        schema = format!("{{\"type\":\"object\",\"properties\":{{\"a\":{schema}}}}}");
    }
    let spec = format!(
        "{{\"openapi\":\"3.1.0\",\"info\":{{\"title\":\"t\",\"version\":\"1\"}},\"components\":{{\"schemas\":{{\"Deep\":{schema}}}}}}}"
    );
    let checked = check_text("deep.json", spec);
    assert!(
        !checked.has_errors(),
        "{:?}",
        crate::support::errors(&checked)
    );
}

#[test]
fn schemas_nested_300_deep_in_block_yaml() {
    let mut spec = String::from(
        "openapi: 3.1.0\ninfo: {title: t, version: '1'}\ncomponents:\n  schemas:\n    Deep:\n",
    );
    let mut indent = "      ".to_string();
    for _ in 0..300 {
        spec.push_str(&format!(
            "{indent}type: object\n{indent}properties:\n{indent}  a:\n"
        ));
        indent.push_str("    ");
    }
    spec.push_str(&format!("{indent}type: string\n"));
    let checked = check_text("deep.yaml", spec);
    assert!(checked.diagnostics.is_empty(), "{:?}", checked.diagnostics);
}

#[test]
fn nesting_beyond_the_limit_is_a_syntax_error() {
    for (name, text) in [
        ("deep.json", "[".repeat(200_000)),
        ("deep.yaml", "a: ".to_string() + &"[".repeat(200_000)),
    ] {
        let checked = check_text(name, text);
        assert_eq!(crate::support::codes(&checked), vec!["GW0002"], "{name}");
        assert!(
            checked.diagnostics[0].message.contains("nesting deeper"),
            "{name}: {}",
            checked.diagnostics[0].message
        );
    }
}

#[test]
fn alias_cycles_are_errors_and_recursive_schemas_are_not() {
    let spec = "openapi: 3.1.0\ninfo: { title: t, version: '1' }\ncomponents:\n  schemas:\n    A: { $ref: '#/components/schemas/B' }\n    B: { $ref: '#/components/schemas/C' }\n    C: { $ref: '#/components/schemas/A' }\n    Self: { $ref: '#/components/schemas/Self' }\n    Tree: { type: object, properties: { kids: { type: array, items: { $ref: '#/components/schemas/Tree' } } } }\n";
    let checked = check_text("cycle.yaml", spec.into());
    let cycles: Vec<_> = checked
        .diagnostics
        .iter()
        .filter(|d| d.code.as_str() == "GW0202")
        .map(|d| d.pointer.clone())
        .collect();
    assert_eq!(cycles.len(), 4, "{cycles:?}");
    assert!(!cycles.iter().any(|p| p.contains("Tree")));
}

#[test]
fn billion_laughs_is_refused() {
    let mut spec = String::from("openapi: 3.1.0\ninfo: { title: t, version: '1' }\nx-a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        spec.push_str(&format!(
            "x-a{i}: &a{i} [{}]\n",
            vec![format!("*a{}", i - 1); 10].join(", ")
        ));
    }
    let checked = check_text("laughs.yaml", spec);
    assert_eq!(crate::support::codes(&checked), vec!["GW0002"]);
}

#[test]
fn hostile_names_become_plain_identifiers() {
    let names = [
        "type",
        "self",
        "Self",
        "super",
        "crate",
        "request",
        "result",
        "fn",
        "gen",
        "async",
        "\"]; fn x(){",
        "*/",
        "/*",
        "\"#",
        "a\u{0}b",
        "unicodé",
        "日本語",
        "",
        "1st",
        "user-id",
        "userId",
        "user_id",
    ];
    let mut params = String::new();
    for n in &names {
        params.push_str(&format!(
            "        - {{ name: {}, in: query, schema: {{ type: string }} }}\n",
            serde_json::to_string(n).unwrap_or_default()
        ));
    }
    let mut spec = op(
        "/x",
        &format!("      operationId: \"\\\"]; fn x(){{ */\"\n      parameters:\n{params}"),
    );
    spec.push_str("  /y:\n    get:\n      operationId: type\n      responses: { '200': { description: ok } }\n  /z:\n    get:\n      operationId: TYPE\n      responses: { '200': { description: ok } }\n");
    let checked = check_text("names.yaml", spec);
    assert!(
        !checked.has_errors(),
        "{:?}",
        crate::support::errors(&checked)
    );
    let gw = checked.gateway.expect("lowered");
    let mut all: Vec<&str> = gw.routes.iter().map(|r| r.rust_name.as_str()).collect();
    for r in &gw.routes {
        all.extend(r.params.iter().map(|p| p.rust_name.as_str()));
    }
    for n in &all {
        assert!(
            n.chars().next().is_some_and(|c| c.is_ascii_lowercase()),
            "{n:?}"
        );
        assert!(
            n.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{n:?}"
        );
        assert!(
            !["type", "self", "super", "crate", "fn", "gen", "async", "request", "result"]
                .contains(n),
            "{n:?} is a keyword or reserved"
        );
    }
    let route_names: Vec<&str> = gw.routes.iter().map(|r| r.rust_name.as_str()).collect();
    assert_eq!(route_names, vec!["fn_x", "type_", "type_2"]);
    let param_names: std::collections::HashSet<&str> = gw.routes[0]
        .params
        .iter()
        .map(|p| p.rust_name.as_str())
        .collect();
    assert_eq!(
        param_names.len(),
        names.len(),
        "parameter names stay unique after case conversion"
    );
}

#[test]
fn garbage_never_panics() {
    for (name, text) in [
        ("empty.yaml", String::new()),
        ("nul.json", "{\"openapi\":\"3.1.0\u{0}\"}".to_string()),
        ("list.yaml", "- a\n- b\n".to_string()),
        ("scalar.json", "42".to_string()),
        ("tabs.yaml", "openapi:\t3.1.0\n\tinfo: x".to_string()),
        ("weird.yaml", "openapi: 3.1.0\ninfo: { title: t, version: '1' }\npaths: { '/a': { get: 5, post: [], $ref: 7 } }\ncomponents: { schemas: { A: { properties: 5, allOf: {}, items: [1], pattern: 9, type: {} } } }".to_string()),
    ] {
        let checked = check_text(name, text);
        assert!(checked.has_errors(), "{name} should be refused");
        assert!(checked.diagnostics.iter().all(|d| !d.message.is_empty()), "{name}");
    }
}

#[test]
fn not_utf8_is_reported() {
    let dir = std::env::temp_dir().join(format!("gwgen-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let path = dir.join("latin1.yaml");
    std::fs::write(
        &path,
        b"openapi: 3.1.0\ninfo: { title: caf\xe9, version: '1' }\n",
    )
    .expect("write");
    let checked = gwgen::check_file(&path);
    assert_eq!(crate::support::codes(&checked), vec!["GW0002"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn api_gateway_extensions_of_any_shape_never_panic() {
    let values = [
        "5",
        "[]",
        "{}",
        "null",
        "'x'",
        "{ type: 5 }",
        "{ type: mock, requestTemplates: 5, responses: [] }",
        "{ type: mock, requestTemplates: { a: 5 }, responses: { default: 5, '2\\d{2}': {} } }",
        "{ type: http, uri: {}, requestParameters: [1], responses: { default: { statusCode: [] } } }",
        "{ type: http_proxy, uri: 'http://h/{x}', httpMethod: 5, requestParameters: { 'overwrite:': 1, ':': '$', 'integration.request.path.x': 5 } }",
        "{ type: aws_proxy, uri: 7, payloadFormatVersion: {} }",
        "{ type: aws, uri: { 'Fn::Sub': [1] } }",
        "{ $ref: 5 }",
        "{ $ref: '#/components/x-amazon-apigateway-integrations/none' }",
    ];
    let templates = [
        "$",
        "${",
        "$!{",
        "$input",
        "$input.params(",
        "$input.params('",
        "$input.params(\"a",
        "$input.json('$[')",
        "$util.base64Encode(",
        "$util.x($)",
        "#",
        "##",
        "#*",
        "\"$context.",
        "{{",
        "é$é",
        "\\",
        "\"\\",
        "#if(",
        "#if($input.params('a')",
        "#if($input.params('a') == )#end",
        "#if($input.params('a') <= 2)#end",
        "#if(((($input.params('a'))))#end",
        "#if($input.params('a') && || !)#end",
        "#if('a)#end",
        "#if(\"é\" == 'é')é#{else}#end",
        "#elseif($a)",
        "#{end",
        "#{end}",
        "#foreach(",
        "#foreach($x in",
        "#foreach($x in $input.path('$.a'))\"#end",
        "#foreach($x in $input.path('$.a'))$foreach.hasNext$velocityCount#end",
        "#foreach($foreach in $input.path('$'))#end",
        "[#foreach($x in $input.json('$'))#foreach($y in $x.b)$y.c#end#end]",
        "$foreach.count",
        "{%",
        "#*never closed",
        "#set($a = $input.path('$'))#foreach($b in $a)#if($b.c == $a.d)\"$b\"#end#end",
    ];
    let mut specs = Vec::new();
    for v in values {
        specs.push(format!(
            "openapi: 3.0.1\ninfo: {{ title: t, version: '1' }}\npaths:\n  /a/{{p+}}:\n    x-amazon-apigateway-any-method: {v}\n    get:\n      responses: {{ '200': {{ description: ok }} }}\n      x-amazon-apigateway-integration: {v}\n      x-amazon-apigateway-request-validator: {v}\n      x-amazon-apigateway-auth: {v}\ncomponents:\n  securitySchemes:\n    s: {{ type: apiKey, name: a, in: header, x-amazon-apigateway-authorizer: {v}, x-amazon-apigateway-authtype: {v} }}\n  x-amazon-apigateway-integrations: {v}\nx-amazon-apigateway-cors: {v}\nx-amazon-apigateway-gateway-responses: {{ DEFAULT_4XX: {v} }}\nx-amazon-apigateway-request-validators: {v}\nx-amazon-apigateway-binary-media-types: {v}\nx-amazon-apigateway-api-key-source: {v}\n"
        ));
        specs.push(format!(
            "swagger: '2.0'\ninfo: {{ title: t, version: '1' }}\nhost: {v}\nconsumes: {v}\nparameters: {{ a: {v} }}\nresponses: {{ r: {v} }}\nsecurityDefinitions: {{ s: {v}, o: {{ type: oauth2, flow: {v} }} }}\npaths:\n  /a:\n    parameters: [{v}]\n    post:\n      parameters: [{v}, {{ in: body, name: b }}, {{ in: body, name: c }}, {{ in: formData, name: f, type: file }}, {{ $ref: '#/parameters/a' }}]\n      responses: {{ '200': {v}, '201': {{ schema: {v}, headers: {v} }} }}\n"
        ));
    }
    for t in templates {
        let t = t.replace('\'', "''");
        // A non-proxy HTTP integration, whose templates read the bodies.
        specs.push(format!(
            "openapi: 3.0.1\ninfo: {{ title: t, version: '1' }}\npaths:\n  /a:\n    post:\n      responses: {{ '200': {{ description: ok }} }}\n      x-amazon-apigateway-integration:\n        type: http\n        httpMethod: POST\n        uri: 'http://127.0.0.1:9/a'\n        requestTemplates: {{ application/json: '{t}' }}\n        responses: {{ default: {{ statusCode: '200', responseTemplates: {{ application/json: '{t}' }} }}, '4\\d{{2}}': {{ statusCode: '400' }} }}\n"
        ));
        // The gateway's own text templates, given the same text.
        specs.push(format!(
            "openapi: 3.0.1\ninfo: {{ title: t, version: '1' }}\npaths:\n  /a:\n    post:\n      responses: {{ '200': {{ description: ok }} }}\n      x-gateway:\n        transform:\n          request: {{ body: {{ text: '{t}' }} }}\n          response: {{ by_status: {{ '4XX': {{ body: {{ text: '{t}{{% for x in response.body %}}{t}{{% end %}}' }} }} }} }}\n"
        ));
        specs.push(format!(
            "openapi: 3.0.1\ninfo: {{ title: t, version: '1' }}\npaths:\n  /a:\n    get:\n      responses: {{ '200': {{ description: ok }} }}\n      x-amazon-apigateway-integration:\n        type: mock\n        requestTemplates: {{ application/json: '{t}' }}\n        responses: {{ default: {{ statusCode: '200', responseTemplates: {{ application/json: '{t}' }} }} }}\n"
        ));
    }
    for (i, spec) in specs.into_iter().enumerate() {
        let checked = check_text(format!("aws-{i}.yaml"), spec);
        assert!(
            checked
                .diagnostics
                .iter()
                .all(|d| !d.message.is_empty() && d.pos.line >= 1),
            "{:?}",
            checked.diagnostics
        );
    }
}
