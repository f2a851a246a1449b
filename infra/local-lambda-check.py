"""Drives the real webhook-ingest and sale-poster binaries end to end, locally.

The binaries run under `cargo lambda watch` (the Lambda runtime API emulator); DynamoDB and
SQS are the moto server, used through the real aws-sdk clients (AWS_ENDPOINT_URL); Ecwid and
Lightspeed are the sandbox. It checks: an unsigned webhook gets 401; a signed PAID webhook
is queued; the poster turns the message into one CLOSED sale with no batch failures and the
ledger says POSTED; a 429 on the sale POST is a batch item failure whose message comes back
after Retry-After (seconds, not the queue's 360 s visibility timeout) and then posts.

Needs, in /work/main/.venv (or VENV): moto[server], boto3, cargo-lambda. Run from anywhere:

    cargo build -p els-sandbox --bin els-sandbox
    .venv/bin/python infra/local-lambda-check.py

Logs of each process go to $TMPDIR/els-lambda-check/.
"""
import json, os, socket, subprocess, tempfile, time, urllib.request, signal
import boto3

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.environ.get("VENV", f"{ROOT}/.venv/bin")
WORK = os.path.join(tempfile.gettempdir(), "els-lambda-check")
os.makedirs(WORK, exist_ok=True)
procs = []

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def wait_port(port, what, timeout=120):
    t = time.time()
    while time.time() - t < timeout:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close(); return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{what} did not listen on {port}")

def http(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"null")

def start(cmd, log, env=None, **kw):
    p = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env, start_new_session=True, **kw)
    procs.append(p); return p

def cleanup():
    for p in procs:
        try: os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError: pass

def invoke(fn, event, port):
    path = f"{WORK}/{fn}.event.json"
    json.dump(event, open(path, "w"))
    out = subprocess.run(["cargo", "lambda", "invoke", fn, "--data-file", path, "--invoke-address", "127.0.0.1", "--invoke-port", str(port), "--output-format", "json"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300, env={**os.environ, "PATH": f"{VENV}:{os.environ['PATH']}"})
    if out.returncode != 0:
        raise SystemExit(f"invoke {fn} failed: {out.stdout} {out.stderr}")
    return json.loads(out.stdout)

def http_api_event(body, signature):
    ev = json.load(open(f"{ROOT}/infra/events/webhook-ingest.http-api.json"))
    ev["body"] = body
    ev["headers"]["content-length"] = str(len(body))
    if signature is None:
        ev["headers"].pop("x-ecwid-webhook-signature")
    else:
        ev["headers"]["x-ecwid-webhook-signature"] = signature
    return ev

def sqs_event(msgs):
    return {"Records": [{
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "attributes": m.get("Attributes", {}), "messageAttributes": {}, "md5OfBody": m["MD5OfBody"],
        "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:orders.fifo", "awsRegion": "us-east-1"} for m in msgs]}

try:
    moto_port, sb_port, invoke_port = free_port(), free_port(), free_port()
    start([f"{VENV}/moto_server", "-p", str(moto_port)], f"{WORK}/moto.log")
    start([f"{ROOT}/target/debug/els-sandbox", "--port", str(sb_port)], f"{WORK}/sandbox.log")
    wait_port(moto_port, "moto"); wait_port(sb_port, "sandbox")
    sb = f"http://127.0.0.1:{sb_port}"
    state = http("GET", f"{sb}/_sandbox/state")
    ids = state["seed_ids"]

    aws = dict(endpoint_url=f"http://127.0.0.1:{moto_port}", region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    ddb, sqs = boto3.client("dynamodb", **aws), boto3.client("sqs", **aws)
    ddb.create_table(TableName="state", BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
    dlq = sqs.create_queue(QueueName="orders-dlq.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue = sqs.create_queue(QueueName="orders.fifo", Attributes={
        "FifoQueue": "true", "ContentBasedDeduplication": "false", "VisibilityTimeout": "360",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"})})["QueueUrl"]
    S = lambda v: {"S": v}
    ddb.put_item(TableName="state", Item={
        "pk": S("STORE#1003"), "sk": S("CONNECTION"), "store_id": {"N": "1003"},
        "ecwid_token": S("secret_sandbox_ecwid_token"),
        "lightspeed": {"M": {"domain_prefix": S("sandbox"), "access_token": S("lsxs_pt_sandbox_token")}},
        "register_id": S(ids["register_id"]), "outlet_id": S(ids["outlet_id"]), "user_id": S(ids["user_id"]),
        "payment_type_id": S(ids["payment_type_id"]), "shipping_product_id": S(ids["shipping_product_id"]),
        "discount_product_id": S(ids["discount_product_id"]),
        "settings": {"M": {"post_sales": {"BOOL": True}, "sync_inventory": {"BOOL": True}}}, "version": {"N": "1"}})

    env = {**os.environ, "PATH": f"{VENV}:{os.environ['PATH']}"}
    env_vars = ",".join([
        f"AWS_ENDPOINT_URL=http://127.0.0.1:{moto_port}", "AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test",
        "TABLE_NAME=state", f"QUEUE_URL={queue}", "ECWID_CLIENT_SECRET=sandbox-client-secret",
        f"ECWID_API_URL={sb}/ecwid/api/v3", f"LIGHTSPEED_URL_TEMPLATE={sb}/lightspeed/{{domain_prefix}}",
        "HTTP_TIMEOUT_MS=5000", "RUST_LOG=info"])
    start(["cargo", "lambda", "watch", "--ignore-changes", "-p", "els-functions", "--invoke-address", "127.0.0.1", "--invoke-port", str(invoke_port), "--env-vars", env_vars],
          f"{WORK}/watch.log", env=env, cwd=ROOT)
    wait_port(invoke_port, "cargo lambda watch", 600)

    def paid_webhook():
        order = http("POST", f"{sb}/_sandbox/orders", {"items": [{"sku": "123123", "quantity": 1}], "email": "ann@example.com", "first_name": "Ann", "last_name": "Lee"})["orderId"]
        hook = http("POST", f"{sb}/_sandbox/webhooks/order", {"eventType": "order.updated", "orderId": order, "old": "AWAITING_PAYMENT", "new": "PAID"})
        return order, hook

    results = {}
    # 1. ingest: unsigned -> 401, signed -> 200 queued
    order1, hook1 = paid_webhook()
    r = invoke("webhook-ingest", http_api_event(hook1["body"], None), invoke_port)
    results["ingest unsigned"] = (r["statusCode"], r["body"])
    assert r["statusCode"] == 401, r
    r = invoke("webhook-ingest", http_api_event(hook1["body"], hook1["signature"]), invoke_port)
    results["ingest signed"] = (r["statusCode"], r["body"])
    assert r["statusCode"] == 200 and json.loads(r["body"])["outcome"] == "queued", r

    # 2. poster: the message becomes one CLOSED sale; no batch failures
    msgs = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, AttributeNames=["All"], VisibilityTimeout=360).get("Messages", [])
    assert len(msgs) == 1, msgs
    r = invoke("sale-poster", sqs_event(msgs), invoke_port)
    results["poster ok"] = r
    assert r["batchItemFailures"] == [], r
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=msgs[0]["ReceiptHandle"])  # what Lambda does
    sales = http("GET", f"{sb}/_sandbox/state")["sales"]
    assert len(sales) == 1 and sales[0]["status"] == "CLOSED", sales
    ledger = ddb.get_item(TableName="state", Key={"pk": S("STORE#1003"), "sk": S(f"ORDER#{order1}")}, ConsistentRead=True)["Item"]
    results["ledger state"] = ledger["state"]

    # 3. 429 on the sale POST: reported as failure, visibility set to Retry-After
    order2, hook2 = paid_webhook()
    r = invoke("webhook-ingest", http_api_event(hook2["body"], hook2["signature"]), invoke_port)
    assert r["statusCode"] == 200, r
    http("POST", f"{sb}/_sandbox/faults", {"route": "LsPostSale", "kind": {"RateLimit": {"retry_after": 3000}}, "times": 1})
    msgs = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, AttributeNames=["All"], VisibilityTimeout=360).get("Messages", [])
    assert len(msgs) == 1, msgs
    t0 = time.time()
    r = invoke("sale-poster", sqs_event(msgs), invoke_port)
    results["poster 429"] = r
    assert [f["itemIdentifier"] for f in r["batchItemFailures"]] == [msgs[0]["MessageId"]], r
    again = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, AttributeNames=["All"]).get("Messages", [])
    assert again == [], "hidden right after the 429"
    while True:
        again = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, AttributeNames=["All"], VisibilityTimeout=360, WaitTimeSeconds=1).get("Messages", [])
        if again: break
        assert time.time() - t0 < 30, "not redelivered within 30 s (the queue's 360 s visibility was not overridden)"
    results["redelivered after s"] = round(time.time() - t0, 1)
    results["receive count"] = again[0]["Attributes"]["ApproximateReceiveCount"]
    r = invoke("sale-poster", sqs_event(again), invoke_port)
    assert r["batchItemFailures"] == [], r
    sales = http("GET", f"{sb}/_sandbox/state")["sales"]
    results["sales"] = [(s["invoice_number"], s["status"]) for s in sales]
    assert len(sales) == 2
    print(json.dumps(results, indent=1))
    print("E2E OK")
finally:
    cleanup()
