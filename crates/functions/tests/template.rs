//! `template.yaml`, read as data: least-privilege IAM for each function, no secret in the
//! configuration, and the settings the functions' code relies on (queue, schedule, alarms).
//!
//! `sam validate --lint` (in `tests/run.sh`) checks that the template is valid; these tests
//! check that it says what the code needs, and nothing more.

use els_functions::config::{INVENTORY_LEASE, TOKEN_KMS_KEY_ID};
use els_store_aws::DynamoStore;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// The template as JSON, CloudFormation's short-form tags turned into their long form
/// (`!Ref X` → `{"Ref": "X"}`, `!GetAtt A.B` → `{"Fn::GetAtt": ["A", "B"]}`, ...).
fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml");
    let text = std::fs::read_to_string(path).expect("template.yaml is readable");
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("template.yaml parses");
    to_json(yaml)
}

fn to_json(yaml: serde_yaml_ng::Value) -> Value {
    use serde_yaml_ng::Value as Y;
    match yaml {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => serde_json::to_value(n).expect("number"),
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Y::Mapping(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let key = k.as_str().expect("string keys").to_string();
                    (key, to_json(v))
                })
                .collect(),
        ),
        Y::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let value = to_json(tagged.value);
            match name {
                "Ref" | "Condition" => json!({ name: value }),
                "GetAtt" => {
                    let dotted = value.as_str().expect("!GetAtt Resource.Attribute");
                    let (resource, attribute) = dotted.split_once('.').expect("A.B");
                    json!({ "Fn::GetAtt": [resource, attribute] })
                }
                other => json!({ format!("Fn::{other}"): value }),
            }
        }
    }
}

fn resources(t: &Value) -> &Map<String, Value> {
    t["Resources"].as_object().expect("Resources")
}

fn of_type<'a>(t: &'a Value, kind: &str) -> Vec<(&'a str, &'a Value)> {
    resources(t)
        .iter()
        .filter(|(_, r)| r["Type"] == kind)
        .map(|(name, r)| (name.as_str(), r))
        .collect()
}

/// A statement list with `Fn::If` entries expanded to both branches (an absent branch,
/// `AWS::NoValue`, dropped): a condition may add a statement, and both must be checked.
fn statements(policy_document: &Value) -> Vec<&Value> {
    as_list(&policy_document["Statement"])
        .into_iter()
        .flat_map(expand_if)
        .collect()
}

/// One statement entry: itself, or the present branches of its `Fn::If`.
fn expand_if(entry: &Value) -> Vec<&Value> {
    match entry.get("Fn::If") {
        Some(branches) => branches.as_array().expect("[cond, then, else]")[1..]
            .iter()
            .filter(|b| b.get("Ref") != Some(&json!("AWS::NoValue")))
            .collect(),
        None => vec![entry],
    }
}

fn as_list(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        one => vec![one],
    }
}

/// Every policy statement granted to a function's role: (role, policy, statement).
fn role_statements(t: &Value) -> Vec<(&str, &str, &Value)> {
    let mut out = Vec::new();
    for (role, r) in of_type(t, "AWS::IAM::Role") {
        for policy in as_list(&r["Properties"]["Policies"]) {
            let name = policy["PolicyName"].as_str().expect("PolicyName");
            for s in statements(&policy["PolicyDocument"]) {
                out.push((role, name, s));
            }
        }
    }
    out
}

fn is_log_group_arn(t: &Value, resource: &Value) -> bool {
    resource["Fn::GetAtt"][1] == "Arn"
        && resource["Fn::GetAtt"][0]
            .as_str()
            .is_some_and(|r| resources(t)[r]["Type"] == "AWS::Logs::LogGroup")
}

/// The wildcard that AWS requires, and the only one allowed: a log group's ARN
/// (`!GetAtt <LogGroup>.Arn`) resolves to `arn:…:log-group:<name>:*`, which covers that
/// group's log streams. Lambda creates a stream per execution environment with a name
/// chosen at run time, so `logs:CreateLogStream` / `logs:PutLogEvents` cannot name them.
/// The exception holds only for those two actions on the function's own log group.
const LOG_STREAM_ACTIONS: [&str; 2] = ["logs:CreateLogStream", "logs:PutLogEvents"];

#[test]
fn no_function_policy_has_a_wildcard_action_or_resource() {
    let t = template();
    assert!(
        role_statements(&t).len() >= 10,
        "policies found: {}",
        role_statements(&t).len()
    );
    let violations = wildcard_violations(&t);
    assert!(violations.is_empty(), "{violations:#?}");
}

/// The check above catches what it claims to, on a role written to break each rule.
#[test]
fn the_wildcard_check_catches_each_kind_of_wildcard() {
    let bad = json!({
        "Resources": {
            "Group": { "Type": "AWS::Logs::LogGroup" },
            "BadRole": {
                "Type": "AWS::IAM::Role",
                "Properties": { "Policies": [{ "PolicyName": "bad", "PolicyDocument": { "Statement": [
                    { "Sid": "A", "Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b" },
                    { "Sid": "R", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*" },
                    { "Sid": "S", "Effect": "Allow", "Action": "s3:GetObject", "Resource": { "Fn::Sub": "arn:aws:s3:::${B}/*" } },
                    { "Sid": "N", "Effect": "Allow", "NotAction": "iam:*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b" },
                    { "Sid": "L", "Effect": "Allow", "Action": "logs:DeleteLogGroup", "Resource": { "Fn::GetAtt": ["Group", "Arn"] } },
                    { "Fn::If": ["C", { "Sid": "I", "Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::b" }, { "Ref": "AWS::NoValue" }] },
                    { "Sid": "OK", "Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": { "Fn::GetAtt": ["Group", "Arn"] } }
                ] } }] }
            }
        }
    });
    let found = wildcard_violations(&bad);
    for sid in ["/A:", "/R:", "/S:", "/N:", "/L:", "/I:"] {
        assert!(
            found.iter().any(|v| v.contains(sid)),
            "{sid} not caught: {found:#?}"
        );
    }
    assert!(!found.iter().any(|v| v.contains("/OK:")), "{found:#?}");
}

/// Every wildcard grant in the template's roles, as `role/policy/Sid: what`.
fn wildcard_violations(t: &Value) -> Vec<String> {
    let mut violations = Vec::new();
    for (role, policy, s) in role_statements(t) {
        let sid = s["Sid"].as_str().unwrap_or("(no Sid)");
        let at = format!("{role}/{policy}/{sid}");
        if s["Effect"] != "Allow" {
            continue;
        }
        for forbidden in ["NotAction", "NotResource"] {
            if s.get(forbidden).is_some() {
                violations.push(format!("{at}: {forbidden} grants everything else"));
            }
        }
        let actions = as_list(&s["Action"]);
        assert!(!actions.is_empty(), "{at}: no Action");
        for a in &actions {
            let a = a
                .as_str()
                .unwrap_or_else(|| panic!("{at}: Action {a} not a string"));
            if a.contains('*') {
                violations.push(format!("{at}: wildcard action {a}"));
            }
        }
        let resources = as_list(&s["Resource"]);
        assert!(!resources.is_empty(), "{at}: no Resource");
        for r in resources {
            // A literal, or the text of a !Sub: either may spell a wildcard.
            let text = r.as_str().or_else(|| r["Fn::Sub"].as_str());
            if text.is_some_and(|x| x.contains('*')) {
                violations.push(format!("{at}: wildcard resource {r}"));
            }
            if is_log_group_arn(t, r) {
                let only_streams = actions
                    .iter()
                    .all(|a| LOG_STREAM_ACTIONS.contains(&a.as_str().unwrap_or_default()));
                if !only_streams {
                    violations.push(format!(
                        "{at}: a log group ARN ends in :* and is allowed for {LOG_STREAM_ACTIONS:?} only"
                    ));
                }
            }
        }
    }
    violations
}

/// `role → {action → resources}` as the template grants them, with conditional grants
/// marked `(if Condition)`.
fn grants(t: &Value) -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let mut out: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (role, r) in of_type(t, "AWS::IAM::Role") {
        for policy in as_list(&r["Properties"]["Policies"]) {
            for entry in as_list(&policy["PolicyDocument"]["Statement"]) {
                let condition = match entry.get("Fn::If") {
                    Some(b) => format!(" (if {})", b[0].as_str().expect("condition name")),
                    None => String::new(),
                };
                for s in expand_if(entry) {
                    for a in as_list(&s["Action"]) {
                        let set = out
                            .entry(role.to_string())
                            .or_default()
                            .entry(format!("{}{condition}", a.as_str().expect("action")))
                            .or_default();
                        for res in as_list(&s["Resource"]) {
                            set.insert(res.to_string());
                        }
                    }
                }
            }
        }
    }
    out
}

/// Each function gets exactly the actions its code calls (see the comments in the
/// template), each on its one resource. A change to what the code calls must show here.
#[test]
fn each_function_is_granted_exactly_what_its_code_calls() {
    let t = template();
    let got = grants(&t);
    let getatt = |r: &str, a: &str| json!({ "Fn::GetAtt": [r, a] }).to_string();
    let table = getatt("StateTable", "Arn");
    let queue = getatt("WorkQueue", "Arn");
    let parameter = json!({
        "Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${EcwidClientSecretParameter}"
    })
    .to_string();
    let kms_key = json!({ "Ref": "EcwidClientSecretKmsKeyArn" }).to_string();
    let ls_parameter = json!({
        "Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${LightspeedClientSecretParameter}"
    })
    .to_string();
    let token_key = token_key().to_string();

    let expect = |pairs: &[(&str, &str)]| -> BTreeMap<String, BTreeSet<String>> {
        pairs
            .iter()
            .map(|(a, r)| (a.to_string(), BTreeSet::from([r.to_string()])))
            .collect()
    };
    let logs = |group: &str| {
        let arn = getatt(group, "Arn");
        [
            ("logs:CreateLogStream", arn.clone()),
            ("logs:PutLogEvents", arn),
        ]
    };
    let with_logs = |group: &str, rest: &[(&str, &str)]| {
        let mut m = expect(rest);
        for (a, r) in logs(group) {
            m.insert(a.to_string(), BTreeSet::from([r]));
        }
        m
    };

    // Ingest queues orders, and a Lightspeed stock webhook's store job.
    let mut ingest = with_logs(
        "WebhookIngestLogGroup",
        &[
            ("dynamodb:GetItem", &table),
            ("dynamodb:PutItem", &table),
            ("ssm:GetParameter", &parameter),
            ("kms:Decrypt (if HasSecretKmsKey)", &kms_key),
        ],
    );
    ingest.insert(
        "sqs:SendMessage".into(),
        BTreeSet::from([queue.clone(), getatt("StoreJobsQueue", "Arn")]),
    );
    assert_eq!(got["WebhookIngestRole"], ingest);
    // Ingest writes only the webhook event records (pk EVENT#{eventId}).
    let record = role_statements(&t)
        .into_iter()
        .find(|(r, _, s)| *r == "WebhookIngestRole" && s["Action"] == "dynamodb:PutItem")
        .expect("ingest's PutItem statement")
        .2;
    assert_eq!(
        record["Condition"],
        json!({ "ForAllValues:StringLike": { "dynamodb:LeadingKeys": ["EVENT#*"] } })
    );
    assert_eq!(
        got["SalePosterRole"],
        with_logs(
            "SalePosterLogGroup",
            &[
                ("dynamodb:GetItem", &table),
                ("dynamodb:PutItem", &table),
                // The PENDING# item's Delete inside the ledger's TransactWriteItems.
                ("dynamodb:DeleteItem", &table),
                ("sqs:ReceiveMessage", &queue),
                ("sqs:DeleteMessage", &queue),
                ("sqs:GetQueueAttributes", &queue),
                ("sqs:ChangeMessageVisibility", &queue),
                // The follow-up queued before a skipped order is reopened.
                ("sqs:SendMessage", &queue),
                // The merchants' tokens: read, and a refreshed OAuth pair written.
                ("kms:Decrypt", &token_key),
                ("kms:Encrypt", &token_key),
                // The Lightspeed OAuth client_secret, only with an OAuth app.
                ("ssm:GetParameter (if HasLightspeedOAuth)", &ls_parameter),
            ]
        )
    );
    // The tick lists the connections with a Query of the index (and BatchGetItem; no
    // Scan), reads no token, and sends one job per store.
    let jobs = getatt("StoreJobsQueue", "Arn");
    let mut tick = with_logs(
        "InventorySyncLogGroup",
        &[
            ("dynamodb:GetItem", &table),
            ("dynamodb:BatchGetItem", &table),
            ("sqs:SendMessage", &jobs),
        ],
    );
    tick.insert(
        "dynamodb:Query".into(),
        BTreeSet::from([connections_index()]),
    );
    assert_eq!(got["InventorySyncRole"], tick);
    // The worker runs one store per job (its mirror, or its sweep, which queues the orders
    // it finds): never lists connections, never deletes.
    assert_eq!(
        got["StoreWorkerRole"],
        with_logs(
            "StoreWorkerLogGroup",
            &[
                ("dynamodb:GetItem", &table),
                ("dynamodb:PutItem", &table),
                ("dynamodb:Query", &table),
                ("dynamodb:BatchGetItem", &table),
                ("dynamodb:BatchWriteItem", &table),
                ("sqs:SendMessage", &queue),
                ("sqs:ReceiveMessage", &jobs),
                ("sqs:DeleteMessage", &jobs),
                ("sqs:GetQueueAttributes", &jobs),
                ("sqs:ChangeMessageVisibility", &jobs),
                ("kms:Decrypt", &token_key),
                ("kms:Encrypt", &token_key),
                ("ssm:GetParameter (if HasLightspeedOAuth)", &ls_parameter),
            ]
        )
    );
    // The sweep's tick is the inventory tick's twin, on its own log group.
    let mut sweep_tick = tick.clone();
    for (a, r) in logs("OrderSweepLogGroup") {
        sweep_tick.insert(a.to_string(), BTreeSet::from([r]));
    }
    assert_eq!(got["OrderSweepRole"], sweep_tick);
    assert_eq!(got.len(), 5, "one role per function: {:?}", got.keys());

    // kms:Decrypt, when granted, only through SSM.
    let kms = role_statements(&t)
        .into_iter()
        .find(|(_, _, s)| s["Sid"] == "DecryptClientSecret")
        .expect("the optional KMS statement")
        .2;
    assert_eq!(
        kms["Condition"]["StringEquals"]["kms:ViaService"],
        json!({ "Fn::Sub": "ssm.${AWS::Region}.${AWS::URLSuffix}" })
    );
}

/// SAM's generated roles attach AWS managed policies (logs on "*"); every function has its
/// own explicit role instead, and no role carries a managed policy.
#[test]
fn functions_have_their_own_roles_without_managed_policies() {
    let t = template();
    let functions = of_type(&t, "AWS::Serverless::Function");
    assert_eq!(functions.len(), 5);
    let mut roles = BTreeSet::new();
    for (name, f) in &functions {
        let p = &f["Properties"];
        assert!(p.get("Policies").is_none(), "{name}: SAM Policies");
        let role = p["Role"]["Fn::GetAtt"][0]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: Role is not !GetAtt <Role>.Arn"));
        assert_eq!(resources(&t)[role]["Type"], "AWS::IAM::Role", "{name}");
        assert!(roles.insert(role), "{name} shares role {role}");
        // Its Logs statement names its own log group.
        let group = p["LoggingConfig"]["LogGroup"]["Ref"]
            .as_str()
            .expect("LogGroup");
        let logs = role_statements(&t)
            .into_iter()
            .find(|(r, _, s)| *r == role && s["Sid"] == "Logs")
            .unwrap_or_else(|| panic!("{role}: no Logs statement"))
            .2;
        assert_eq!(logs["Resource"]["Fn::GetAtt"][0], group, "{role}");
    }
    for (name, r) in of_type(&t, "AWS::IAM::Role") {
        let p = &r["Properties"];
        assert!(p.get("ManagedPolicyArns").is_none(), "{name}");
        let trust = statements(&p["AssumeRolePolicyDocument"]);
        assert_eq!(trust.len(), 1, "{name}");
        assert_eq!(trust[0]["Principal"]["Service"], "lambda.amazonaws.com");
    }
    for kind in ["AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"] {
        assert!(of_type(&t, kind).is_empty(), "no free-standing {kind}");
    }
}

/// The client_secret is an SSM parameter's name in the template, never a value: no
/// parameter takes it and no function's environment holds it.
#[test]
fn no_secret_is_a_template_parameter_or_an_environment_value() {
    let t = template();
    let params = t["Parameters"].as_object().expect("Parameters");
    for (name, p) in params {
        assert!(
            p.get("NoEcho").is_none(),
            "{name}: a secret as a parameter value"
        );
        assert!(!name.eq_ignore_ascii_case("EcwidClientSecret"), "{name}");
    }
    let secret_param = &params["EcwidClientSecretParameter"];
    assert!(
        secret_param["Default"]
            .as_str()
            .is_some_and(|d| d.starts_with('/')),
        "a parameter name (its ARN is built as parameter${{Name}})"
    );

    let mut envs = vec![(
        "Globals",
        &t["Globals"]["Function"]["Environment"]["Variables"],
    )];
    for (name, f) in of_type(&t, "AWS::Serverless::Function") {
        envs.push((name, &f["Properties"]["Environment"]["Variables"]));
    }
    for (owner, vars) in envs {
        for (var, value) in vars.as_object().expect("Variables") {
            let upper = var.to_ascii_uppercase();
            let secretish = ["SECRET", "TOKEN", "PASSWORD", "KEY"]
                .iter()
                .any(|w| upper.contains(w));
            // The token key's ARN names a key, it is not one.
            if secretish && !(var == TOKEN_KMS_KEY_ID && *value == token_key()) {
                assert!(
                    upper.ends_with("_PARAMETER"),
                    "{owner}: {var} looks like a secret value"
                );
                assert!(
                    value["Ref"] == "EcwidClientSecretParameter"
                        || value["Ref"] == "LightspeedClientSecretParameter",
                    "{owner}: {var}"
                );
            }
        }
    }
}

/// The KMS key of the merchants' tokens, as roles and functions name it: the stack's own key,
/// or the one the `TokenKmsKeyArn` parameter gives.
fn token_key() -> Value {
    json!({ "Fn::If": [
        "CreateTokenKmsKey",
        { "Fn::GetAtt": ["TokenKmsKey", "Arn"] },
        { "Ref": "TokenKmsKeyArn" }
    ] })
}

/// Merchant tokens are KMS ciphertext (issue #17): the stack's key is kept when the stack
/// is deleted and rotates; exactly the functions that use tokens may use it (ingest, which
/// only checks that a connection exists, may not), only with a `store_id` encryption
/// context, and only those that store a refreshed OAuth pair may encrypt.
#[test]
fn only_the_functions_that_use_tokens_may_decrypt_them_with_a_store_context() {
    let t = template();
    assert_eq!(t["Parameters"]["TokenKmsKeyArn"]["Default"], "");
    assert_eq!(
        t["Conditions"]["CreateTokenKmsKey"],
        json!({ "Fn::Equals": [{ "Ref": "TokenKmsKeyArn" }, ""] })
    );
    let key = &resources(&t)["TokenKmsKey"];
    assert_eq!(key["Type"], "AWS::KMS::Key");
    assert_eq!(key["Condition"], "CreateTokenKmsKey");
    assert_eq!(key["DeletionPolicy"], "Retain", "backups need the key");
    assert_eq!(key["UpdateReplacePolicy"], "Retain");
    let p = &key["Properties"];
    assert_eq!(p["EnableKeyRotation"], true);
    assert_eq!(p["KeySpec"], "SYMMETRIC_DEFAULT");
    let admin = statements(&p["KeyPolicy"]);
    assert_eq!(admin.len(), 1, "{admin:?}");
    assert_eq!(
        admin[0]["Principal"]["AWS"],
        json!({ "Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root" }),
        "the account administers the key; IAM policies grant its use"
    );
    assert_eq!(t["Outputs"]["TokenKeyArn"]["Value"], token_key());

    let mut decrypters = BTreeSet::new();
    let mut encrypters = BTreeSet::new();
    for (role, _, s) in role_statements(&t) {
        let actions: Vec<&str> = as_list(&s["Action"])
            .into_iter()
            .filter_map(Value::as_str)
            .collect();
        let on_token_key = as_list(&s["Resource"]).contains(&&token_key());
        if !on_token_key {
            continue;
        }
        assert_eq!(s["Effect"], "Allow");
        assert_eq!(
            s["Condition"]["Null"],
            json!({ "kms:EncryptionContext:store_id": "false" }),
            "{role}: the key only with a store_id encryption context"
        );
        assert_eq!(
            s["Condition"]["ForAllValues:StringEquals"],
            json!({ "kms:EncryptionContextKeys": ["store_id", "attribute"] }),
            "{role}"
        );
        for a in actions {
            match a {
                "kms:Decrypt" => decrypters.insert(role),
                "kms:Encrypt" => encrypters.insert(role),
                other => panic!("{role}: {other} on the token key"),
            };
        }
    }
    assert_eq!(
        decrypters,
        BTreeSet::from(["SalePosterRole", "StoreWorkerRole"])
    );
    assert_eq!(
        encrypters,
        BTreeSet::from(["StoreWorkerRole", "SalePosterRole"])
    );

    // The key's ARN is given to exactly those functions, and webhook-ingest has no key.
    assert!(
        t["Globals"]["Function"]["Environment"]["Variables"]
            .get(TOKEN_KMS_KEY_ID)
            .is_none()
    );
    let mut given = BTreeSet::new();
    for (name, f) in of_type(&t, "AWS::Serverless::Function") {
        if let Some(v) = f["Properties"]["Environment"]["Variables"].get(TOKEN_KMS_KEY_ID) {
            assert_eq!(*v, token_key(), "{name}");
            given.insert(name);
        }
    }
    assert_eq!(
        given,
        BTreeSet::from(["SalePosterFunction", "StoreWorkerFunction"])
    );
}

fn function<'a>(t: &'a Value, name: &str) -> &'a Value {
    &resources(t)[name]["Properties"]
}

fn number(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("{v} is not a number"))
}

#[test]
fn functions_are_arm64_al2023_cargo_lambda_builds_with_limits_and_json_logs() {
    let t = template();
    let globals = &t["Globals"]["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    assert_eq!(globals["Architectures"], json!(["arm64"]));
    assert_eq!(globals["Handler"], "bootstrap");
    let mut binaries = BTreeSet::new();
    for (name, f) in of_type(&t, "AWS::Serverless::Function") {
        assert_eq!(f["Metadata"]["BuildMethod"], "rust-cargolambda", "{name}");
        let binary = f["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .expect("Binary");
        let source = format!("{}/src/bin/{binary}.rs", env!("CARGO_MANIFEST_DIR"));
        assert!(std::path::Path::new(&source).exists(), "{name}: {source}");
        binaries.insert(binary);
        let p = &f["Properties"];
        assert!(number(&p["Timeout"]) > 0, "{name}: Timeout");
        assert!(number(&p["MemorySize"]) >= 128, "{name}: MemorySize");
        assert_eq!(p["LoggingConfig"]["LogFormat"], "JSON", "{name}");
    }
    assert_eq!(
        binaries,
        BTreeSet::from([
            "webhook-ingest",
            "sale-poster",
            "inventory-sync",
            "store-worker",
            "order-sweep"
        ])
    );
}

#[test]
fn queue_redrive_and_event_source_match_what_the_poster_assumes() {
    let t = template();
    let params = &t["Parameters"];
    let poster = function(&t, "SalePosterFunction");
    let poster_timeout = number(&poster["Timeout"]);
    let queue = &resources(&t)["WorkQueue"]["Properties"];
    assert_eq!(queue["FifoQueue"], true);
    assert!(
        number(&queue["VisibilityTimeout"]) >= 6 * poster_timeout,
        "visibility timeout at least 6 x the poster's timeout"
    );
    let max_receives = json!({ "Ref": "MaxReceiveCount" });
    assert_eq!(queue["RedrivePolicy"]["maxReceiveCount"], max_receives);
    assert_eq!(
        queue["RedrivePolicy"]["deadLetterTargetArn"],
        json!({ "Fn::GetAtt": ["DeadLetterQueue", "Arn"] })
    );
    assert_eq!(
        poster["Environment"]["Variables"]["MAX_RECEIVE_COUNT"], max_receives,
        "the poster parks on the queue's last receive"
    );
    assert!(
        number(&params["LeaseSeconds"]["MinValue"]) > poster_timeout,
        "a ledger lease outlives an attempt"
    );

    let esm = &poster["Events"]["WorkQueueMessages"];
    assert_eq!(esm["Type"], "SQS");
    let p = &esm["Properties"];
    assert_eq!(
        p["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
    assert_eq!(p["BatchSize"], json!({ "Ref": "PosterBatchSize" }));
    assert!(number(&params["PosterBatchSize"]["MaxValue"]) <= 10, "FIFO");
    assert_eq!(
        p["ScalingConfig"]["MaximumConcurrency"],
        json!({ "Ref": "PosterMaximumConcurrency" })
    );
}

#[test]
fn the_inventory_tick_fans_out_one_job_per_store_to_a_worker_within_its_timeout_and_lease() {
    let t = template();
    let params = &t["Parameters"];
    assert_eq!(params["InventorySyncSchedule"]["Default"], "rate(1 minute)");
    let tick = function(&t, "InventorySyncFunction");
    let schedule = &tick["Events"]["InventorySchedule"];
    assert_eq!(schedule["Type"], "Schedule");
    assert_eq!(
        schedule["Properties"]["Schedule"],
        json!({ "Ref": "InventorySyncSchedule" })
    );
    assert_eq!(tick["EventInvokeConfig"]["MaximumRetryAttempts"], 0);
    let vars = &tick["Environment"]["Variables"];
    assert_eq!(
        vars["STORE_JOBS_QUEUE_URL"],
        json!({ "Ref": "StoreJobsQueue" })
    );
    assert!(vars.get("QUEUE_URL").is_none(), "the tick queues no order");
    assert!(
        vars.get(TOKEN_KMS_KEY_ID).is_none(),
        "the tick reads no token"
    );

    let worker = function(&t, "StoreWorkerFunction");
    let timeout = number(&worker["Timeout"]);
    let max_run = number(&params["InventoryMaxRunSeconds"]["MaxValue"]);
    assert!(
        max_run + 10 <= timeout,
        "a page still fits after the budget"
    );
    assert!(
        timeout < INVENTORY_LEASE.as_secs(),
        "a live run keeps its lease"
    );

    let queue = &resources(&t)["StoreJobsQueue"]["Properties"];
    assert_eq!(
        queue["FifoQueue"], true,
        "one store's jobs in order, deduplicated"
    );
    assert_eq!(
        queue["ContentBasedDeduplication"], false,
        "the job names its tick"
    );
    assert!(number(&queue["VisibilityTimeout"]) >= 6 * timeout);
    assert_eq!(
        queue["RedrivePolicy"]["deadLetterTargetArn"],
        json!({ "Fn::GetAtt": ["StoreJobsDeadLetterQueue", "Arn"] })
    );
    let esm = &worker["Events"]["StoreJobs"];
    assert_eq!(esm["Type"], "SQS");
    let p = &esm["Properties"];
    assert_eq!(
        p["Queue"],
        json!({ "Fn::GetAtt": ["StoreJobsQueue", "Arn"] })
    );
    assert_eq!(
        p["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
    assert_eq!(p["BatchSize"], json!({ "Ref": "StoreWorkerBatchSize" }));
    assert!(
        number(&params["StoreWorkerBatchSize"]["MaxValue"]) <= 10,
        "FIFO"
    );
    assert_eq!(
        p["ScalingConfig"]["MaximumConcurrency"],
        json!({ "Ref": "StoreWorkerConcurrency" })
    );
    assert!(
        number(&params["StoreWorkerConcurrency"]["MinValue"]) >= 2,
        "the SQS minimum"
    );
}

#[test]
fn alarms_watch_the_dlq_the_queue_age_and_every_function() {
    let t = template();
    let alarms = of_type(&t, "AWS::CloudWatch::Alarm");
    let watches = |metric: &str, dimension: Value| {
        alarms.iter().any(|(_, a)| {
            let p = &a["Properties"];
            p["MetricName"] == metric
                && as_list(&p["Dimensions"])
                    .iter()
                    .any(|d| d["Value"] == dimension)
        })
    };
    for dlq in ["DeadLetterQueue", "StoreJobsDeadLetterQueue"] {
        assert!(
            watches(
                "ApproximateNumberOfMessagesVisible",
                json!({ "Fn::GetAtt": [dlq, "QueueName"] })
            ),
            "{dlq}"
        );
    }
    assert!(watches(
        "ApproximateAgeOfOldestMessage",
        json!({ "Fn::GetAtt": ["WorkQueue", "QueueName"] })
    ));
    for (name, _) in of_type(&t, "AWS::Serverless::Function") {
        assert!(watches("Errors", json!({ "Ref": name })), "{name} Errors");
    }
    let notify = json!({ "Fn::If": ["HasAlarmTopic", [{ "Ref": "AlarmTopicArn" }], { "Ref": "AWS::NoValue" }] });
    for (name, a) in &alarms {
        assert_eq!(a["Properties"]["AlarmActions"], notify, "{name}");
    }
    assert_eq!(t["Parameters"]["AlarmTopicArn"]["Default"], "");
}

/// The ARN of the `connections` index, as the roles that list connections name it.
fn connections_index() -> String {
    json!({ "Fn::Sub": format!("${{StateTable.Arn}}/index/{}", DynamoStore::CONNECTIONS_INDEX) })
        .to_string()
}

/// Connections are listed through the sparse `connections` index that DynamoStore queries
/// (keys only: no token is copied into it), never by a Scan: no role may Scan the table, and
/// every role that queries the index may read the items it names (BatchGetItem) and the
/// schema version (GetItem, `DynamoStore::ensure_migrated`). The migration's Scan runs
/// with the operator's credentials (`els`), not a function's.
#[test]
fn connections_are_listed_only_through_a_keys_only_index() {
    let t = template();
    let p = &resources(&t)["StateTable"]["Properties"];
    let indexes = as_list(&p["GlobalSecondaryIndexes"]);
    assert_eq!(indexes.len(), 1, "{indexes:?}");
    let index = indexes[0];
    assert_eq!(index["IndexName"], DynamoStore::CONNECTIONS_INDEX);
    assert_eq!(
        index["KeySchema"],
        json!([
            { "AttributeName": DynamoStore::CONNECTIONS_INDEX_ATTRIBUTE, "KeyType": "HASH" },
            { "AttributeName": "pk", "KeyType": "RANGE" }
        ])
    );
    assert_eq!(
        index["Projection"],
        json!({ "ProjectionType": "KEYS_ONLY" })
    );
    assert!(
        as_list(&p["AttributeDefinitions"]).contains(&&json!({
            "AttributeName": DynamoStore::CONNECTIONS_INDEX_ATTRIBUTE,
            "AttributeType": "S"
        })),
        "the index's hash key is a string attribute"
    );

    let table = json!({ "Fn::GetAtt": ["StateTable", "Arn"] }).to_string();
    let index = connections_index();
    let mut listers = Vec::new();
    for (role, actions) in grants(&t) {
        assert!(
            !actions.keys().any(|a| a.starts_with("dynamodb:Scan")),
            "{role} may Scan the table"
        );
        for (action, resources) in &actions {
            for r in resources.iter().filter(|r| r.contains("/index/")) {
                assert_eq!(
                    (action.as_str(), r),
                    ("dynamodb:Query", &index),
                    "{role}: only Query, only the connections index"
                );
            }
        }
        if actions
            .get("dynamodb:Query")
            .is_some_and(|r| r.contains(&index))
        {
            for needed in ["dynamodb:BatchGetItem", "dynamodb:GetItem"] {
                assert!(
                    actions.get(needed).is_some_and(|r| r.contains(&table)),
                    "{role} lists connections without {needed} on the table"
                );
            }
            listers.push(role);
        }
    }
    assert!(
        listers.contains(&"InventorySyncRole".to_string()),
        "{listers:?}"
    );
}

#[test]
fn table_is_on_demand_with_ttl_recovery_and_encryption() {
    let t = template();
    let table = &resources(&t)["StateTable"];
    assert_eq!(table["DeletionPolicy"], "Retain");
    let p = &table["Properties"];
    assert_eq!(p["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(p["TimeToLiveSpecification"]["Enabled"], true);
    assert_eq!(
        p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
        true
    );
    assert_eq!(p["SSESpecification"]["SSEEnabled"], true);
}

#[test]
fn every_parameter_is_documented() {
    let t = template();
    for (name, p) in t["Parameters"].as_object().expect("Parameters") {
        let doc = p["Description"].as_str().unwrap_or_default();
        assert!(doc.len() >= 20, "{name}: describe it");
    }
}

/// Every custom metric (one not in an `AWS/` namespace) that an alarm names, as
/// `(alarm, namespace, metric)`: plain alarms and the metrics of metric-math alarms.
fn alarm_metrics(t: &Value) -> Vec<(String, Value, String)> {
    let mut out = Vec::new();
    for (name, a) in of_type(t, "AWS::CloudWatch::Alarm") {
        let p = &a["Properties"];
        let mut named = Vec::new();
        if let Some(metric) = p["MetricName"].as_str() {
            named.push((p["Namespace"].clone(), metric.to_string()));
        }
        for m in as_list(&p["Metrics"]) {
            let metric = &m["MetricStat"]["Metric"];
            if let Some(metric_name) = metric["MetricName"].as_str() {
                named.push((metric["Namespace"].clone(), metric_name.to_string()));
            }
        }
        assert!(!named.is_empty(), "{name}: watches no metric");
        for (namespace, metric) in named {
            let aws = namespace.as_str().is_some_and(|n| n.starts_with("AWS/"));
            if !aws {
                out.push((name.to_string(), namespace, metric));
            }
        }
    }
    out
}

/// The dashboard's body with its `!Sub` variables replaced (the namespace by its default),
/// parsed: `(namespace, metric)` of every metric its widgets draw, and the metric names
/// its `SEARCH` expressions name.
fn dashboard_metrics(t: &Value) -> (Vec<(String, String)>, Vec<String>) {
    let dashboards = of_type(t, "AWS::CloudWatch::Dashboard");
    assert_eq!(dashboards.len(), 1, "one dashboard");
    let body = dashboards[0].1["Properties"]["DashboardBody"]["Fn::Sub"]
        .as_str()
        .expect("DashboardBody is a !Sub of JSON text");
    let namespace = t["Parameters"]["MetricsNamespace"]["Default"]
        .as_str()
        .expect("MetricsNamespace default");
    // Every ${...} must be a parameter, a resource or a pseudo parameter.
    let mut text = String::new();
    let mut rest = body;
    while let Some(start) = rest.find("${") {
        text.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("closed ${") + start;
        let var = &rest[start + 2..end];
        let known = var.starts_with("AWS::")
            || t["Parameters"].get(var).is_some()
            || resources(t).contains_key(var.split('.').next().unwrap_or_default());
        assert!(known, "dashboard names ${{{var}}}, which does not exist");
        text.push_str(if var == "MetricsNamespace" {
            namespace
        } else {
            "x"
        });
        rest = &rest[end + 1..];
    }
    text.push_str(rest);
    let body: Value = serde_json::from_str(&text).expect("the dashboard body is JSON");

    let mut drawn = Vec::new();
    let mut searched = Vec::new();
    for widget in body["widgets"].as_array().expect("widgets") {
        for line in as_list(&widget["properties"]["metrics"]) {
            let parts = line.as_array().expect("a metric line is an array");
            if let Some(expression) = parts[0]["expression"].as_str() {
                let mut rest = expression;
                while let Some(at) = rest.find("MetricName=\"") {
                    rest = &rest[at + "MetricName=\"".len()..];
                    let end = rest.find('"').expect("closing quote");
                    searched.push(rest[..end].to_string());
                    assert!(
                        expression.contains(&format!("\"{namespace}\"")),
                        "{expression}: searches another namespace"
                    );
                }
                continue;
            }
            let ns = parts[0].as_str().expect("namespace");
            assert_ne!(ns, ".", "no shorthand: every line names its metric");
            drawn.push((
                ns.to_string(),
                parts[1].as_str().expect("metric").to_string(),
            ));
        }
    }
    (drawn, searched)
}

/// The alarms and the dashboard watch metrics the code emits, in the namespace the
/// functions are given: a metric renamed in `metrics.rs` must be renamed here too, or an
/// alarm would watch a metric nobody writes (and, missing data being "not breaching" for
/// most of them, never fire).
#[test]
fn alarms_and_dashboard_name_only_metrics_the_functions_emit() {
    use els_functions::metrics;
    let t = template();
    let param = &t["Parameters"]["MetricsNamespace"];
    assert_eq!(param["Default"], metrics::DEFAULT_NAMESPACE);
    assert_eq!(
        t["Globals"]["Function"]["Environment"]["Variables"][metrics::NAMESPACE_VAR],
        json!({ "Ref": "MetricsNamespace" }),
        "every function writes to the namespace the alarms read"
    );

    let watched = alarm_metrics(&t);
    for (alarm, namespace, metric) in &watched {
        assert_eq!(namespace, &json!({ "Ref": "MetricsNamespace" }), "{alarm}");
        assert!(
            metrics::ALL.contains(&metric.as_str()),
            "{alarm} watches {metric}, which no function emits"
        );
    }
    let watched: BTreeSet<&str> = watched.iter().map(|(_, _, m)| m.as_str()).collect();
    for needed in [
        metrics::ORDERS_POSTED,
        metrics::ORDERS_DEAD_LETTERED,
        metrics::MIRROR_TICKS_COMPLETED,
        metrics::MIRROR_STORES_FAILED,
        metrics::SWEEP_TICKS_COMPLETED,
        metrics::STORES_UNHEALTHY,
    ] {
        assert!(watched.contains(needed), "no alarm watches {needed}");
    }

    let (drawn, searched) = dashboard_metrics(&t);
    for (namespace, metric) in &drawn {
        if !namespace.starts_with("AWS/") {
            assert_eq!(namespace, metrics::DEFAULT_NAMESPACE, "{metric}");
            assert!(
                metrics::ALL.contains(&metric.as_str()),
                "the dashboard draws {metric}, which no function emits"
            );
        }
    }
    assert_eq!(searched, vec![metrics::ORDERS_PARKED.to_string()]);
    let on_dashboard: BTreeSet<&str> = drawn
        .iter()
        .map(|(_, m)| m.as_str())
        .chain(searched.iter().map(String::as_str))
        .collect();
    for metric in metrics::ALL {
        assert!(
            on_dashboard.contains(metric),
            "{metric} is not on the dashboard"
        );
    }
}

/// Silence is alarmed on: a stall (no completed run) counts missing data as breaching,
/// and "no sale posted while orders wait" fills the missing hours with zero.
#[test]
fn silence_alarms_treat_missing_runs_as_a_stall() {
    let t = template();
    let alarm = |name: &str| &resources(&t)[name]["Properties"];
    for (name, metric, period) in [
        ("MirrorStalledAlarm", "MirrorTicksCompleted", 60),
        ("SweepStalledAlarm", "SweepTicksCompleted", 300),
    ] {
        let p = alarm(name);
        assert_eq!(p["MetricName"], metric, "{name}");
        assert_eq!(p["Statistic"], "Sum", "{name}");
        assert_eq!(number(&p["Period"]), period, "{name}");
        assert_eq!(number(&p["EvaluationPeriods"]), 3, "{name}");
        assert_eq!(number(&p["Threshold"]), 1, "{name}");
        assert_eq!(p["ComparisonOperator"], "LessThanThreshold", "{name}");
        assert_eq!(p["TreatMissingData"], "breaching", "{name}");
    }
    // A minute's periods only make sense for a schedule of one run a minute.
    assert_eq!(
        resources(&t)["MirrorStalledAlarm"]["Condition"],
        "MirrorRunsEveryMinute"
    );
    assert_eq!(
        t["Conditions"]["MirrorRunsEveryMinute"],
        json!({ "Fn::And": [
            { "Fn::Equals": [{ "Ref": "InventorySyncState" }, "ENABLED"] },
            { "Fn::Equals": [{ "Ref": "InventorySyncSchedule" }, "rate(1 minute)"] }
        ] })
    );

    let p = alarm("StoresUnhealthyAlarm");
    assert_eq!(
        (&p["MetricName"], &p["Statistic"], &p["ComparisonOperator"]),
        (
            &json!("StoresUnhealthy"),
            &json!("Maximum"),
            &json!("GreaterThanThreshold")
        )
    );
    assert_eq!(number(&p["Threshold"]), 0);

    let p = alarm("NoSalesPostedAlarm");
    let returned: Vec<&Value> = as_list(&p["Metrics"])
        .into_iter()
        .filter(|m| m["ReturnData"] == true)
        .collect();
    assert_eq!(returned.len(), 1, "one expression is the alarm's");
    let expression = returned[0]["Expression"].as_str().expect("an expression");
    for part in ["FILL(posted, 0) == 0", "FILL(waiting, 0) > 0"] {
        assert!(expression.contains(part), "{expression}: {part}");
    }
    let waiting = as_list(&p["Metrics"])
        .into_iter()
        .find(|m| m["Id"] == "waiting")
        .expect("the queue's metric");
    assert_eq!(
        waiting["MetricStat"]["Metric"]["Dimensions"][0]["Value"],
        json!({ "Fn::GetAtt": ["WorkQueue", "QueueName"] })
    );
    let hours = json!({ "Ref": "NoSalesAlarmHours" });
    assert_eq!(p["EvaluationPeriods"], hours);
    assert_eq!(p["DatapointsToAlarm"], hours);
    assert_eq!(
        number(&as_list(&p["Metrics"])[0]["MetricStat"]["Period"]),
        3600
    );
    assert_eq!(t["Parameters"]["NoSalesAlarmHours"]["Default"], 6);
    assert_eq!(
        t["Parameters"]["QueueAgeAlarmSeconds"]["Default"], 1800,
        "orders late by 30 minutes"
    );
}

/// order-sweep: a parameterised schedule (every 5 minutes by default) whose tick enqueues
/// one sweep job per store, the schedule is the retry, its environment is only the table and
/// the store-jobs queue; the worker's sweep budget fits the worker's timeout and its lease.
#[test]
fn order_sweep_ticks_on_a_parameterised_schedule_and_the_worker_sweeps_within_its_timeout() {
    use els_functions::config::{QUEUE_URL, STORE_JOBS_QUEUE_URL, SWEEP_MAX_RUN_SECONDS};
    let t = template();
    let params = &t["Parameters"];
    assert_eq!(params["OrderSweepSchedule"]["Default"], "rate(5 minutes)");
    let f = function(&t, "OrderSweepFunction");
    let schedule = &f["Events"]["SweepSchedule"];
    assert_eq!(schedule["Type"], "Schedule");
    assert_eq!(
        schedule["Properties"]["Schedule"],
        json!({ "Ref": "OrderSweepSchedule" })
    );
    assert_eq!(f["EventInvokeConfig"]["MaximumRetryAttempts"], 0);
    let vars = f["Environment"]["Variables"]
        .as_object()
        .expect("Variables");
    let names: BTreeSet<&str> = vars.keys().map(String::as_str).collect();
    assert_eq!(names, BTreeSet::from([STORE_JOBS_QUEUE_URL]));

    let worker = function(&t, "StoreWorkerFunction");
    let timeout = number(&worker["Timeout"]);
    let max_run = number(&params["SweepMaxRunSeconds"]["MaxValue"]);
    assert!(
        max_run + 10 <= timeout,
        "a window still fits after the budget"
    );
    let lease = els_core::sweep::SweepConfig::default().lease.num_seconds() as u64;
    assert!(timeout < lease, "a live sweep keeps its store's lease");
    let vars = &worker["Environment"]["Variables"];
    assert_eq!(vars[QUEUE_URL], json!({ "Ref": "WorkQueue" }));
    assert_eq!(
        vars[SWEEP_MAX_RUN_SECONDS],
        json!({ "Ref": "SweepMaxRunSeconds" })
    );
}
