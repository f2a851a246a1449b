#!/usr/bin/env python3
"""End to end on the real Lambda binaries, without Docker: part of tests/run.sh.

The function binaries run under `cargo lambda watch --ignore-changes` (the Lambda
runtime API emulator; they are built beforehand). DynamoDB, SQS, SSM and KMS are the moto
server, reached through the real aws-sdk clients (AWS_ENDPOINT_URL); Ecwid and Lightspeed are
the sandbox binary (els-sandbox). The Ecwid client_secret is an SSM SecureString, read by
webhook-ingest at its cold start exactly as in AWS. The connection is created with the
operator CLI (`els connect --backend aws`), its tokens stored as ciphertext under a moto KMS
key (TOKEN_KMS_KEY_ID), which the poster and store-worker decrypt.

Checks, each a hard failure (non-zero exit) on any mismatch:
 1. ingest: the sample HTTP API event (infra/events/webhook-ingest.http-api.json, order
    K8XTQ) is queued (200); the same body unsigned gets 401.
 2. poster: the message taken from the moto queue, sent as an SQS event, becomes one CLOSED
    sale with invoice ECWID-1003-K8XTQ; no batch item failures; the ledger says POSTED.
 3. inventory-sync, with the sample scheduled event, enqueues one store job on the store-jobs
    FIFO queue; store-worker, given that job as an SQS event, mirrors the store: Ecwid
    stock equals the Lightspeed level at the register's outlet for every product (the sale
    and a POS sale included; a change at the other outlet ignored), as the sandbox's
    /_sandbox/state shows.
 4. poster, 429: a rate-limited sale POST is a batch item failure; the message comes back
    after Retry-After (seconds, not the queue's 360 s visibility timeout), then posts.
 5. poster, last receive: a message on its MAX_RECEIVE_COUNT-th receive whose post still
    fails is a batch item failure, the order is PARKED as DEAD_LETTERED with the last error,
    and SQS moves the message to the DLQ; `els replay --dlq` (the real binary) puts it back
    and the poster then posts it once, leaving the DLQ empty.
 6. order-sweep, with the sample scheduled event, enqueues one sweep job; store-worker,
    given it, finds the paid order that never got a webhook, its message is on the queue,
    and the poster posts it once; the next tick's sweep finds nothing new.

Usage (tests/run.sh does this; els-functions alone, with the features `cargo lambda watch`
resolves, so the watch does not rebuild it):
    cargo build -p els-functions --bins && cargo build -p els-sandbox -p els-cli
    .venv/bin/python infra/local-lambda-check.py
Uses the moto server at ELS_MOTO_ENDPOINT, or starts one. Logs: target/lambda-check/.
"""
import base64
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import boto3

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.environ.get("VENV_BIN", os.path.join(ROOT, ".venv", "bin"))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
WORK = os.path.join(TARGET, "lambda-check")
EVENTS = os.path.join(ROOT, "infra", "events")
TEST_SECRET = "test-client-secret-3f9a"  # the sample event's documented test secret
MAX_RECEIVES = 5
STORE = 1003
RUN = uuid.uuid4().hex[:8]  # resource names unique to this run (moto may be shared)

os.makedirs(WORK, exist_ok=True)
procs = []
started = time.time()


def fail(message):
    print(f"\nFAIL: {message}", file=sys.stderr)
    for name in ("watch.log", "sandbox.log"):
        path = os.path.join(WORK, name)
        if os.path.exists(path):
            with open(path, errors="replace") as f:
                tail = f.readlines()[-40:]
            print(f"--- last lines of {path}:\n{''.join(tail)}", file=sys.stderr)
    raise SystemExit(1)


def check(condition, message):
    if not condition:
        fail(message)


def step(message):
    print(f"[{time.time() - started:5.1f}s] {message}", flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, what, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    fail(f"{what} did not listen on port {port} within {timeout} s")


def start(cmd, log, env=None):
    p = subprocess.Popen(cmd, stdout=open(os.path.join(WORK, log), "w"), stderr=subprocess.STDOUT,
                         env=env, cwd=ROOT, start_new_session=True)
    procs.append(p)
    return p


def stop_all():
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)


def http(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        fail(f"{method} {url}: HTTP {e.code} {e.read()[:500]!r}")


def tool_env():
    return {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}


def invoke(function, event, port):
    """`cargo lambda invoke`: the event through the emulator's Invoke API, as AWS would."""
    path = os.path.join(WORK, f"{function}.event.json")
    with open(path, "w") as f:
        json.dump(event, f)
    out = subprocess.run(
        ["cargo", "lambda", "invoke", function, "--data-file", path,
         "--invoke-address", "127.0.0.1", "--invoke-port", str(port), "--output-format", "json"],
        capture_output=True, text=True, cwd=ROOT, timeout=300, env=tool_env())
    if out.returncode != 0:
        fail(f"invoke {function} failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout)


def sample(name):
    with open(os.path.join(EVENTS, name)) as f:
        return json.load(f)


def http_api_event(body, signature):
    """The sample HTTP API event carrying another webhook body."""
    event = sample("webhook-ingest.http-api.json")
    event["body"] = body
    event["headers"]["content-length"] = str(len(body.encode()))
    if signature is None:
        event["headers"].pop("x-ecwid-webhook-signature")
    else:
        event["headers"]["x-ecwid-webhook-signature"] = signature
    return event


def lightspeed_event(path, body):
    """An HTTP API event of a Lightspeed stock webhook (form-encoded) delivered to `path`."""
    event = sample("webhook-ingest.http-api.json")
    event["rawPath"] = path
    event["routeKey"] = "POST /webhooks/lightspeed/{store}/{secret}"
    event["requestContext"]["http"]["path"] = path
    event["requestContext"]["routeKey"] = event["routeKey"]
    event["headers"].pop("x-ecwid-webhook-signature")
    event["headers"]["content-type"] = "application/x-www-form-urlencoded"
    event["headers"]["content-length"] = str(len(body.encode()))
    event["body"] = body
    return event


def sign(body):
    """Signs a webhook like Ecwid, with the app's client_secret (the one in SSM)."""
    hook = json.loads(body)
    message = f"{hook['eventCreated']}.{hook['eventId']}".encode()
    return base64.b64encode(hmac.new(TEST_SECRET.encode(), message, hashlib.sha256).digest()).decode()


def sqs_event(messages):
    """An SQS event as the event source mapping builds it from received messages."""
    return {"Records": [{
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "attributes": m.get("Attributes", {}), "messageAttributes": {}, "md5OfBody": m["MD5OfBody"],
        "eventSource": "aws:sqs", "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:orders-{RUN}.fifo",
        "awsRegion": "us-east-1"} for m in messages]}


def main():
    # -------------------------------------------------------------- services
    moto = os.environ.get("ELS_MOTO_ENDPOINT")
    if not moto:
        moto_port = free_port()
        start([os.path.join(VENV_BIN, "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)], "moto.log")
        wait_port(moto_port, "moto")
        moto = f"http://127.0.0.1:{moto_port}"
    sb_port, invoke_port = free_port(), free_port()
    start([os.path.join(TARGET, "debug", "els-sandbox"), "--port", str(sb_port)], "sandbox.log")
    wait_port(sb_port, "sandbox")
    sb = f"http://127.0.0.1:{sb_port}"
    ids = http("GET", f"{sb}/_sandbox/state")["seed_ids"]
    step(f"moto at {moto}, sandbox at {sb}")

    aws = dict(endpoint_url=moto, region_name="us-east-1",
               aws_access_key_id="testing", aws_secret_access_key="testing")
    ddb, sqs, ssm, kms = (boto3.client(s, **aws) for s in ("dynamodb", "sqs", "ssm", "kms"))
    table = f"els-lambda-{RUN}"
    # As template.yaml's StateTable: keys, and the sparse keys-only index the functions list
    # connections with (the first els command writes the schema version).
    ddb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                           {"AttributeName": "sk", "AttributeType": "S"},
                                           {"AttributeName": "gsi_connections", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                {"AttributeName": "sk", "KeyType": "RANGE"}],
                     GlobalSecondaryIndexes=[{
                         "IndexName": "connections",
                         "KeySchema": [{"AttributeName": "gsi_connections", "KeyType": "HASH"},
                                       {"AttributeName": "pk", "KeyType": "RANGE"}],
                         "Projection": {"ProjectionType": "KEYS_ONLY"}}])
    # As template.yaml: FIFO, 360 s visibility, DLQ after MAX_RECEIVES receives.
    dlq = sqs.create_queue(QueueName=f"orders-dlq-{RUN}.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue = sqs.create_queue(QueueName=f"orders-{RUN}.fifo", Attributes={
        "FifoQueue": "true", "ContentBasedDeduplication": "false", "VisibilityTimeout": "360",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVES)})})["QueueUrl"]
    # As template.yaml's StoreJobsQueue: FIFO, the job's own deduplication id.
    jobs_queue = sqs.create_queue(QueueName=f"store-jobs-{RUN}.fifo", Attributes={
        "FifoQueue": "true", "ContentBasedDeduplication": "false", "VisibilityTimeout": "540"})["QueueUrl"]
    secret_parameter = f"/els-lambda-{RUN}/ecwid-client-secret"
    ssm.put_parameter(Name=secret_parameter, Value=TEST_SECRET, Type="SecureString")
    # As template.yaml's TokenKmsKey: the merchants' tokens in the table are ciphertext under
    # it. els and the functions that read tokens get its ARN (TOKEN_KMS_KEY_ID).
    token_key = kms.create_key(Description=f"els-lambda-{RUN} tokens")["KeyMetadata"]["Arn"]

    aws_env = {"AWS_ENDPOINT_URL": moto, "AWS_REGION": "us-east-1",
               "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "TOKEN_KMS_KEY_ID": token_key}
    connect = subprocess.run(
        [os.path.join(TARGET, "debug", "els"), "connect", "--backend", "aws", "--table", table,
         "--queue-url", queue, "--store", str(STORE), "--domain-prefix", "sandbox",
         # By name, as a merchant chooses: connect checks both tokens and every choice
         # against the (sandbox) APIs before it writes the connection to DynamoDB.
         "--register", "Web Store Register", "--payment-type", "Ecwid Online",
         # Registers the store's Lightspeed stock webhooks under this base (the stack's
         # ApiUrl); the sandbox's deliveries to it fail, the test delivers by hand (3b).
         "--public-url", "https://abcdef1234.execute-api.us-east-1.amazonaws.com"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
        env={**os.environ, **aws_env, "ECWID_TOKEN": "secret_sandbox_ecwid_token",
             "LIGHTSPEED_TOKEN": "lsxs_pt_sandbox_token",
             "ECWID_API_URL": f"{sb}/ecwid/api/v3",
             "LIGHTSPEED_URL_TEMPLATE": f"{sb}/lightspeed/{{domain_prefix}}"})
    check(connect.returncode == 0, f"els connect failed:\n{connect.stdout}{connect.stderr}")
    check(ids["register_id"] in connect.stdout and "Main Outlet" in connect.stdout,
          f"els connect chose another register:\n{connect.stdout}")
    stored = ddb.get_item(TableName=table, ConsistentRead=True,
                          Key={"pk": {"S": f"STORE#{STORE}"}, "sk": {"S": "CONNECTION"}})["Item"]
    # The tokens are sealed together in one ciphertext (`tokens`); each token's own
    # attribute only says it is there.
    check("B" in stored.get("tokens", {}) and stored["ecwid_token"] == {"BOOL": True}
          and stored["lightspeed"]["M"]["access_token"] == {"BOOL": True}
          and "secret_sandbox_ecwid_token" not in repr(stored)
          and "lsxs_pt_sandbox_token" not in repr(stored),
          f"els connect stored a token in clear: {sorted(stored)}")
    doctor = subprocess.run(
        [os.path.join(TARGET, "debug", "els"), "doctor", "--backend", "aws", "--table", table,
         "--queue-url", queue, "--store", str(STORE)],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
        env={**os.environ, **aws_env, "ECWID_API_URL": f"{sb}/ecwid/api/v3",
             "LIGHTSPEED_URL_TEMPLATE": f"{sb}/lightspeed/{{domain_prefix}}"})
    check(doctor.returncode == 0 and f"store {STORE}: ready" in doctor.stdout,
          f"els doctor on DynamoDB:\n{doctor.stdout}{doctor.stderr}")
    # els settings on DynamoDB: a choice re-checked against the APIs, written with a
    # conditional put on the stored version (the tokens stay as stored).
    settings = subprocess.run(
        [os.path.join(TARGET, "debug", "els"), "settings", "--backend", "aws", "--table", table,
         "--queue-url", queue, "--store", str(STORE), "--payment-type", "ecwid online"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
        env={**os.environ, **aws_env, "ECWID_API_URL": f"{sb}/ecwid/api/v3",
             "LIGHTSPEED_URL_TEMPLATE": f"{sb}/lightspeed/{{domain_prefix}}"})
    check(settings.returncode == 0 and "saved (version 2)" in settings.stdout
          and ids["payment_type_id"] in settings.stdout,
          f"els settings on DynamoDB:\n{settings.stdout}{settings.stderr}")
    step("table, FIFO queue + DLQ, SSM SecureString, KMS key; connect by name (tokens stored "
         "as KMS ciphertext), doctor ready, settings saved")

    # One environment for the three functions, as the template sets them (the secret's
    # parameter NAME only; no ECWID_CLIENT_SECRET).
    env_file = os.path.join(WORK, "functions.env")
    with open(env_file, "w") as f:
        for k, v in {**aws_env, "TABLE_NAME": table, "QUEUE_URL": queue,
                     "STORE_JOBS_QUEUE_URL": jobs_queue,
                     "ECWID_CLIENT_SECRET_PARAMETER": secret_parameter,
                     "ECWID_API_URL": f"{sb}/ecwid/api/v3",
                     "LIGHTSPEED_URL_TEMPLATE": f"{sb}/lightspeed/{{domain_prefix}}",
                     "HTTP_TIMEOUT_MS": "5000", "MAX_RECEIVE_COUNT": str(MAX_RECEIVES),
                     "SEARCH_DELAY_SECONDS": "1",
                     "INVENTORY_MAX_RUN_SECONDS": "20", "SWEEP_MAX_RUN_SECONDS": "20",
                     "RUST_LOG": "info"}.items():
            f.write(f"{k}={v}\n")
    start(["cargo", "lambda", "watch", "--ignore-changes", "-p", "els-functions",
           "--invoke-address", "127.0.0.1", "--invoke-port", str(invoke_port), "--env-file", env_file],
          "watch.log", env=tool_env())
    wait_port(invoke_port, "cargo lambda watch", 300)
    step(f"cargo lambda watch on port {invoke_port}")

    def ledger(order_id):
        item = ddb.get_item(TableName=table, ConsistentRead=True,
                            Key={"pk": {"S": f"STORE#{STORE}"}, "sk": {"S": f"ORDER#{order_id}"}}).get("Item")
        check(item is not None, f"no ledger item for order {order_id}")
        return item

    def receive(visibility=360, wait=0):
        return sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, AttributeNames=["All"],
                                   VisibilityTimeout=visibility, WaitTimeSeconds=wait).get("Messages", [])

    def sales():
        """The sales we posted (POS sales made by the test are not counted)."""
        return [s for s in http("GET", f"{sb}/_sandbox/state")["sales"]
                if str(s.get("invoice_number", "")).startswith("ECWID-")]

    # -------------------------------------------------------------- 1. ingest
    event = sample("webhook-ingest.http-api.json")
    hook = json.loads(event["body"])
    order_id = hook["data"]["orderId"]
    check(hook["storeId"] == STORE, "the sample event is for store 1003")
    # The order the sample webhook names, paid, in the sandbox's Ecwid.
    http("POST", f"{sb}/_sandbox/orders", {
        "order_id": order_id, "items": [{"sku": "MUG-001", "quantity": 2}],
        "email": "ann@example.com", "first_name": "Ann", "last_name": "Lee"})

    r = invoke("webhook-ingest", http_api_event(event["body"], None), invoke_port)
    check(r.get("statusCode") == 401, f"unsigned webhook: expected 401, got {r}")
    r = invoke("webhook-ingest", event, invoke_port)
    check(r.get("statusCode") == 200 and json.loads(r["body"]).get("outcome") == "queued",
          f"sample webhook: expected 200 queued, got {r}")
    step("ingest: unsigned 401; the sample event (signed with the SSM secret) queued")

    # -------------------------------------------------------------- 2. poster
    messages = receive()
    check(len(messages) == 1, f"one queued message, got {messages}")
    check(json.loads(messages[0]["Body"])["orderId"] == order_id, f"message for {order_id}: {messages[0]['Body']}")
    r = invoke("sale-poster", sqs_event(messages), invoke_port)
    check(r == {"batchItemFailures": []}, f"poster: expected no failures, got {r}")
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=messages[0]["ReceiptHandle"])  # what Lambda does
    posted = sales()
    check(len(posted) == 1, f"one sale, got {len(posted)}")
    check(posted[0]["status"] == "CLOSED" and posted[0]["invoice_number"] == f"ECWID-{STORE}-{order_id}",
          f"sale: {posted[0]}")
    state = ledger(order_id)["state"]["S"]
    check(state == "POSTED", f"ledger state {state}")
    step(f"poster: one CLOSED sale {posted[0]['invoice_number']}; ledger POSTED")

    # -------------------------------------------------------------- 3. inventory-sync
    http("POST", f"{sb}/_sandbox/pos_sales", {"product_id": ids["tote"]["ls_product_id"], "quantity": 3})
    http("POST", f"{sb}/_sandbox/inventory", {"product_id": ids["sticker"]["ls_product_id"],
                                              "outlet_id": ids["second_outlet_id"], "level": 5})
    r = invoke("inventory-sync", sample("inventory-sync.scheduled.json"), invoke_port)
    check(r == {"connections": 1, "enqueued": 1, "off": 0}, f"inventory-sync: one job, got {r}")
    jobs = sqs.receive_message(QueueUrl=jobs_queue, MaxNumberOfMessages=10, AttributeNames=["All"],
                               VisibilityTimeout=540).get("Messages", [])
    check(len(jobs) == 1 and json.loads(jobs[0]["Body"])["storeId"] == STORE,
          f"one store job for store {STORE}, got {jobs}")
    r = invoke("store-worker", sqs_event(jobs), invoke_port)
    check(r == {"batchItemFailures": []}, f"store-worker: expected no failures, got {r}")
    sqs.delete_message(QueueUrl=jobs_queue, ReceiptHandle=jobs[0]["ReceiptHandle"])  # what Lambda does
    state = http("GET", f"{sb}/_sandbox/state")
    levels = {(i["product_id"], i["outlet_id"]): i["inventory_level"] for i in state["ls_inventory"]}
    stock = {(s["product_id"], s["combination_id"]): s["quantity"] for s in state["ecwid_stock"]}

    def expect(product, ecwid_key, expected):
        level = levels[(product["ls_product_id"], ids["outlet_id"])]
        check(float(level) == expected, f"{product['sku']}: Lightspeed level {level}, expected {expected}")
        check(stock.get(ecwid_key) is not None and float(stock[ecwid_key]) == expected,
              f"{product['sku']}: Ecwid stock {stock.get(ecwid_key)}, expected the outlet's level {expected}")

    expect(ids["mug"], (ids["mug"]["ecwid_product_id"], None), 28)        # 30 - 2 sold online
    expect(ids["tote"], (ids["tote"]["ecwid_product_id"], None), 22)      # 25 - 3 sold at the POS
    expect(ids["sticker"], (ids["sticker"]["ecwid_product_id"], None), 200)  # other outlet ignored
    for product_id, outlet_id in levels:
        if outlet_id != ids["outlet_id"]:
            continue
        for p in [ids["toys"], ids["mug"], ids["tote"], ids["sticker"]]:
            if p["ls_product_id"] == product_id:
                expect(p, (p["ecwid_product_id"], None), float(levels[(product_id, outlet_id)]))
    step("inventory-sync: one store job; store-worker: Ecwid stock = Lightspeed outlet levels")

    # -------------------------------------------------------------- 3b. Lightspeed stock webhook
    hooks = [h for h in http("GET", f"{sb}/_sandbox/state")["ls_webhooks"] if h["type"] == "inventory.update"]
    check(len(hooks) == 1 and hooks[0]["url"].startswith(
        f"https://abcdef1234.execute-api.us-east-1.amazonaws.com/webhooks/lightspeed/{STORE}/"),
        f"els connect registered one inventory.update webhook, got {hooks}")
    path = urllib.parse.urlparse(hooks[0]["url"]).path
    http("POST", f"{sb}/_sandbox/inventory", {"product_id": ids["mug"]["ls_product_id"],
                                              "outlet_id": ids["outlet_id"], "level": 17})
    body = "type=inventory.update&payload=%7B%22product_id%22%3A%22x%22%7D"
    r = invoke("webhook-ingest", lightspeed_event(path[:-4] + "0000", body), invoke_port)
    check(r.get("statusCode") == 401, f"a wrong secret: expected 401, got {r}")
    r = invoke("webhook-ingest", lightspeed_event(path, body), invoke_port)
    check(r.get("statusCode") == 200, f"the Lightspeed webhook: expected 200, got {r}")
    jobs = sqs.receive_message(QueueUrl=jobs_queue, MaxNumberOfMessages=10, AttributeNames=["All"],
                               VisibilityTimeout=540).get("Messages", [])
    check(len(jobs) == 1 and json.loads(jobs[0]["Body"])["trigger"] == "lightspeed_webhook",
          f"one store job from the webhook, got {jobs}")
    r = invoke("store-worker", sqs_event(jobs), invoke_port)
    check(r == {"batchItemFailures": []}, f"store-worker: expected no failures, got {r}")
    sqs.delete_message(QueueUrl=jobs_queue, ReceiptHandle=jobs[0]["ReceiptHandle"])
    stock = {(s["product_id"], s["combination_id"]): s["quantity"]
             for s in http("GET", f"{sb}/_sandbox/state")["ecwid_stock"]}
    check(float(stock[(ids["mug"]["ecwid_product_id"], None)]) == 17,
          f"the mug's Ecwid stock after the webhook: {stock}")
    step("Lightspeed webhook: a wrong secret 401; the right one queues the store's job, "
         "which store-worker runs (Ecwid stock 17)")

    # -------------------------------------------------------------- 4. poster, 429
    def paid_order(sku):
        oid = http("POST", f"{sb}/_sandbox/orders", {"items": [{"sku": sku, "quantity": 1}],
                                                     "email": "bo@example.com", "first_name": "Bo", "last_name": "Ng"})["orderId"]
        body = http("POST", f"{sb}/_sandbox/webhooks/order",
                    {"eventType": "order.updated", "orderId": oid, "old": "AWAITING_PAYMENT", "new": "PAID"})["body"]
        r = invoke("webhook-ingest", http_api_event(body, sign(body)), invoke_port)
        check(r.get("statusCode") == 200, f"ingest of {oid}: {r}")
        return oid

    paid_order("STICKER-01")
    http("POST", f"{sb}/_sandbox/faults", {"route": "LsPostSale", "kind": {"RateLimit": {"retry_after": 3000}}, "times": 1})
    messages = receive()
    check(len(messages) == 1, f"one message, got {messages}")
    t0 = time.time()
    r = invoke("sale-poster", sqs_event(messages), invoke_port)
    check([f["itemIdentifier"] for f in r["batchItemFailures"]] == [messages[0]["MessageId"]],
          f"429: expected the record as a batch item failure, got {r}")
    check(receive() == [], "the message is hidden right after the 429")
    again = []
    while not again:
        check(time.time() - t0 < 30, "not redelivered within 30 s: the 360 s visibility was not overridden")
        again = receive(wait=1)
    waited = time.time() - t0
    check(again[0]["Attributes"]["ApproximateReceiveCount"] == "2", f"second receive: {again[0]['Attributes']}")
    r = invoke("sale-poster", sqs_event(again), invoke_port)
    check(r == {"batchItemFailures": []}, f"after Retry-After: {r}")
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=again[0]["ReceiptHandle"])
    check(len(sales()) == 2, f"two sales, got {len(sales())}")
    step(f"poster 429: redelivered after {waited:.1f} s, then posted once")

    # -------------------------------------------------------------- 5. poster, last receive
    order3 = paid_order("STICKER-01")
    http("POST", f"{sb}/_sandbox/faults", {"route": "LsPostSale", "kind": {"Status": 503}, "times": 1000})
    for _ in range(MAX_RECEIVES - 1):  # earlier receives that failed (the poster's retries)
        check(len(receive(visibility=0)) == 1, "the message is receivable")
    last = receive()
    check(len(last) == 1 and last[0]["Attributes"]["ApproximateReceiveCount"] == str(MAX_RECEIVES),
          f"receive number {MAX_RECEIVES}: {last}")
    r = invoke("sale-poster", sqs_event(last), invoke_port)
    check(r == {"batchItemFailures": [{"itemIdentifier": last[0]["MessageId"]}]},
          f"last receive: the record is a batch item failure, got {r}")
    http("DELETE", f"{sb}/_sandbox/faults")
    item = ledger(order3)
    reason = item.get("reason", {}).get("M", {})
    check(item["state"]["S"] == "PARKED" and reason.get("code", {}).get("S") == "DEAD_LETTERED",
          f"order {order3}: expected PARKED / DEAD_LETTERED, got {item['state']} {reason}")
    check("503" in reason.get("message", {}).get("S", ""), f"the last error is kept: {reason}")
    check(len(sales()) == 2, "no sale for the parked order")
    # The handler made it visible at once: the next receive moves it to the DLQ.
    check(receive() == [], "the message is not delivered a sixth time")

    def dlq_depth():
        a = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages",
                                                                     "ApproximateNumberOfMessagesNotVisible"])
        return sum(int(v) for v in a["Attributes"].values())
    check(dlq_depth() == 1, f"the message is in the DLQ ({dlq_depth()})")
    replay = subprocess.run(
        [os.path.join(TARGET, "debug", "els"), "replay", "--backend", "aws", "--table", table,
         "--queue-url", queue, "--dlq"],
        capture_output=True, text=True, cwd=ROOT, timeout=60, env={**os.environ, **aws_env})
    check(replay.returncode == 0 and f"{STORE}/{order3}" in replay.stdout,
          f"els replay --dlq:\n{replay.stdout}{replay.stderr}")
    check(dlq_depth() == 0, "the DLQ is empty after the replay")
    replayed = receive()
    check(len(replayed) == 1, f"one replay message on the queue: {replayed}")
    # The parked attempts' POSTs answered 5xx (the sale may exist), so the replay searches
    # first, and no attempt claims the order before SEARCH_DELAY_SECONDS after the last one.
    time.sleep(1.2)
    r = invoke("sale-poster", sqs_event(replayed), invoke_port)
    check(r == {"batchItemFailures": []}, f"replayed: {r}")
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=replayed[0]["ReceiptHandle"])
    check(ledger(order3)["state"]["S"] == "POSTED", f"order {order3} POSTED after the replay")
    check(len(sales()) == 3, f"one sale for the replayed order, got {len(sales()) - 2}")
    step(f"poster last receive: order {order3} PARKED (DEAD_LETTERED), message in the DLQ; "
         "els replay --dlq posted it once")

    # -------------------------------------------------------------- 6. order-sweep
    lost = http("POST", f"{sb}/_sandbox/orders", {"items": [{"sku": "STICKER-01", "quantity": 2}],
                                                  "email": "cy@example.com", "first_name": "Cy", "last_name": "Ho"})["orderId"]
    def sweep_tick(minutes_later):
        """order-sweep's tick (the sample event, `minutes_later`), then its one job run by
        store-worker as the event source would; the worker's answer."""
        event = sample("inventory-sync.scheduled.json")
        event["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 60 * minutes_later))
        r = invoke("order-sweep", event, invoke_port)
        check(r == {"connections": 1, "enqueued": 1, "off": 0}, f"order-sweep: one job, got {r}")
        jobs = sqs.receive_message(QueueUrl=jobs_queue, MaxNumberOfMessages=10, AttributeNames=["All"],
                                   VisibilityTimeout=540).get("Messages", [])
        check(len(jobs) == 1 and json.loads(jobs[0]["Body"])["kind"] == "sweep",
              f"one sweep job, got {jobs}")
        r = invoke("store-worker", sqs_event(jobs), invoke_port)
        sqs.delete_message(QueueUrl=jobs_queue, ReceiptHandle=jobs[0]["ReceiptHandle"])
        return r

    r = sweep_tick(0)
    check(r == {"batchItemFailures": []}, f"store-worker's sweep: expected no failures, got {r}")
    swept = receive()
    check([json.loads(m["Body"])["orderId"] for m in swept] == [lost],
          f"the swept order's message is on the queue: {swept}")
    r = invoke("sale-poster", sqs_event(swept), invoke_port)
    check(r == {"batchItemFailures": []}, f"swept order posted: {r}")
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=swept[0]["ReceiptHandle"])
    check(ledger(lost)["state"]["S"] == "POSTED", f"order {lost} POSTED after the sweep")
    r = sweep_tick(1)
    check(r == {"batchItemFailures": []} and receive() == [], f"a second sweep finds nothing new: {r}")
    check(len(sales()) == 4, f"one sale for the swept order, got {len(sales()) - 3}")
    step(f"order-sweep: order {lost} (no webhook) found, queued and posted once")

    print(f"Lambda end to end: 6 checks passed in {time.time() - started:.1f} s")


if __name__ == "__main__":
    try:
        main()
    finally:
        stop_all()
