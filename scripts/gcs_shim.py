"""A loopback HTTP shim in front of fake-gcs-server for decom's GCS tests.

fake-gcs-server 1.54.0 (the emulator scripts/gcs.sh starts) lacks parts of
the GCS JSON API that decom relies on (see the header of scripts/gcs.sh and
/tmp/gcs-notes.md), so the tests talk to this shim, which forwards to the
emulator and adds what the GCS JSON API documents:

- buckets keep lifecycle, retentionPolicy, softDeletePolicy, encryption,
  labels, iamConfiguration, customPlacementConfig, location(Type) and
  storageClass, verbatim; a bucket PATCH replaces only the fields it names
  (never turning versioning off) and honours ifMetagenerationMatch;
  metageneration counts; a bucket delete answers 204 (409 when not empty);
- objects get a metageneration, temporaryHold/eventBasedHold (also from the
  bucket's defaultEventBasedHold), retention, kmsKeyName, metadata; an object
  PATCH is answered here (the emulator would duplicate the object);
- DELETE honours `generation` (a noncurrent generation can be deleted),
  ifGeneration(Not)Match against the live generation, ifMetageneration(Not)Match
  against the target generation, holds (403 forbidden), bucket and object
  retention (403 retentionPolicyNotMet); success is 204;
- soft delete: under a softDeletePolicy a permanent delete keeps the object
  (softDeleteTime, hardDeleteTime) for `softDeleted=true` GETs and listings
  until hardDeleteTime, and POST .../restore?generation=G brings it back;
- uploads honour ifGenerationMatch (0 = "no live object") and holds;
- listings page themselves over (name, generation) (the emulator's paging
  loops with versions=true), accept versions=True, compute `prefixes`;
- the batch endpoint answers parts without a Content-ID too;
- errors come in GCS shape with GCS reasons (notFound, conditionNotMet, ...).
Anything else is forwarded unchanged.

Test controls (not GCS):
  POST /_shim/faults  JSON {"keep_on_delete": [...], "hide_from_listing": [...],
        "rewrite_before_delete": [...], "fail_next": {"count": N, "status": S}}
        with entries "bucket/name#generation" or "bucket/name" (any generation):
        keep_on_delete: DELETE answers 204 and deletes nothing;
        hide_from_listing: listings omit it, GETs still serve it;
        hide_after_delete: DELETE answers 204, deletes nothing, and from then
          on listings omit it while GETs still serve it (a store whose index
          forgot what its data still holds);
        rewrite_before_delete: the next DELETE of that name first uploads a
          new live generation (b"rewritten after approval"), once per entry;
        fail_next: the next N requests (batch parts count, /_shim/ does not)
          answer status S with a GCS-shaped error; with "bucket": B in it,
          only requests naming bucket B count (tests run side by side).
        A POST replaces the faults of the buckets it names.
  POST /_shim/reset?bucket=B  clears B's faults (no bucket: all, and fail_next)
  GET  /_shim/stats   {"requests", "batch_parts", "by_method", "parts_by_method"}
        (requests and by_method count HTTP requests received, /_shim/ excluded)
  POST /_shim/stats/reset   zeroes the counters

  gcs_shim.py --listen 127.0.0.1:Q --upstream http://127.0.0.1:P [--delay-ms N]
"""
import argparse
import base64
import http.client
import json
import re
import secrets
import sys
import threading
import time
import traceback
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, unquote, urlsplit

HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
       "trailers", "transfer-encoding", "upgrade", "host", "content-length", "date", "server",
       "accept-encoding", "expect"}
BUCKET_FIELDS = ("lifecycle", "retentionPolicy", "softDeletePolicy", "encryption", "labels",
                 "iamConfiguration", "customPlacementConfig", "location", "locationType", "storageClass")
FLAG_FIELDS = ("versioning", "defaultEventBasedHold")
REASONS = {400: "invalid", 401: "required", 403: "forbidden", 404: "notFound", 409: "conflict",
           412: "conditionNotMet", 429: "rateLimitExceeded", 500: "internalError"}


class Resp:
    def __init__(self, status, headers=(), body=b""):
        self.status, self.headers, self.body = status, list(headers), body

    @classmethod
    def json(cls, status, obj):
        body = json.dumps(obj, separators=(",", ":")).encode()
        return cls(status, [("Content-Type", "application/json; charset=UTF-8")], body)

    def header(self, name):
        return next((v for k, v in self.headers if k.lower() == name), None)


def error(code, reason, message):
    err = {"code": code, "message": message,
           "errors": [{"domain": "global", "reason": reason, "message": message}]}
    return Resp.json(code, {"error": err})


def not_found(b, name, gen=None):
    what = f"{b}/{name}" + (f"#{gen}" if gen is not None else "")
    return error(404, "notFound", f"No such object: {what}")


def invalid(message):
    return error(400, "invalid", message)


def json_body(req):
    """The request's JSON body ({} when empty), or None when it is not JSON."""
    try:
        return json.loads(req.body or b"{}")
    except ValueError:
        return None


def normalize(r):
    """An emulator error answer with the GCS reason for its status."""
    if r.status < 400 or "json" not in (r.header("content-type") or ""):
        return r
    try:
        message = json.loads(r.body)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return r
    return error(r.status, REASONS.get(r.status, "backendError"), message)


def rfc3339(ts):
    dt = datetime.fromtimestamp(ts, timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_time(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def truthy(v):
    return v is not None and v.lower() == "true"


def qn(s):
    return quote(s, safe="")


def boundary_of(content_type):
    m = re.search(r'boundary="?([^";]+)"?', content_type or "")
    return m.group(1) if m else None


def split_head(data, start_line=False):
    """(head lines, {header: value}, body) of a MIME part, or of an HTTP message (start_line)."""
    m = re.search(rb"\r?\n\r?\n", data)
    if data.startswith((b"\r\n", b"\n")):
        head, body = b"", data.lstrip(b"\r")[1:]
    elif m:
        head, body = data[:m.start()], data[m.end():]
    else:
        head, body = data, b""
    lines = [ln for ln in re.split(rb"\r?\n", head) if ln]
    headers = {}
    for ln in lines[1:] if start_line else lines:
        k, sep, v = ln.decode("latin-1").partition(":")
        if sep:
            headers[k.strip().lower()] = v.strip()
    return lines, headers, body


def split_multipart(body, boundary):
    delim = b"--" + boundary.encode()
    parts = []
    for chunk in body.split(delim)[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk[1:] if chunk.startswith(b"\n") else chunk
        chunk = chunk[:-2] if chunk.endswith(b"\r\n") else chunk[:-1] if chunk.endswith(b"\n") else chunk
        parts.append(split_head(chunk))
    return parts


class Req:
    def __init__(self, method, target, headers, body):
        parts = urlsplit(target)
        self.method, self.path, self.rawq = method, parts.path, parts.query
        self.q = dict(parse_qsl(parts.query, keep_blank_values=True))
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body

    @property
    def target(self):
        return self.path + ("?" + self.rawq if self.rawq else "")


class Upstream:
    """The emulator, over one keep-alive connection per thread."""

    def __init__(self, base):
        u = urlsplit(base)
        self.base, self.host, self.port = base.rstrip("/"), u.hostname, u.port or 80
        self.local = threading.local()

    def request(self, method, target, body=None, headers=None):
        for attempt in (0, 1):
            conn = getattr(self.local, "conn", None) or http.client.HTTPConnection(self.host, self.port, timeout=120)
            self.local.conn = conn
            try:
                conn.request(method, target, body=body, headers=headers or {})
                r = conn.getresponse()
                data = r.read()
                if r.will_close:
                    conn.close()
                    self.local.conn = None
                return Resp(r.status, r.getheaders(), data)
            except (http.client.HTTPException, OSError):
                conn.close()
                self.local.conn = None
                if attempt:
                    raise

    def get_json(self, target):
        r = self.request("GET", target)
        return json.loads(r.body) if r.status == 200 else None


class BucketState:
    def __init__(self, faults=None):
        self.extra, self.metageneration = {}, 1
        self.versioning = self.debh = None           # None: not read from the emulator yet
        self.meta, self.tomb, self.soft = {}, set(), {}   # keyed by (name, int generation)
        self.faults = faults or empty_faults()


def empty_faults():
    return {"keep_on_delete": set(), "hide_from_listing": set(), "hide_after_delete": set(),
            "rewrite_before_delete": []}


def parse_ref(ref):
    b, _, rest = ref.partition("/")
    name, sep, gen = rest.rpartition("#")
    return (b, name, int(gen)) if sep and gen.isdigit() else (b, rest, None)


def fault(bs, kind, name, gen):
    return (name, gen) in bs.faults[kind] or (name, None) in bs.faults[kind]


def preconditions(q, metageneration, generation):
    """412 unless the if(Meta)generation(Not)Match parameters hold (generation 0: none)."""
    checks = (("ifMetagenerationMatch", metageneration, True), ("ifMetagenerationNotMatch", metageneration, False),
              ("ifGenerationMatch", generation, True), ("ifGenerationNotMatch", generation, False))
    for key, actual, want in checks:
        v = q.get(key)
        if v is None:
            continue
        if not re.fullmatch(r"-?\d+", v):
            return invalid(f"Invalid value for {key}: {v}")
        if (int(v) == actual) != want:
            return error(412, "conditionNotMet", "At least one of the pre-conditions you specified did not hold.")
    return None


def merge_metadata(current, patch):
    """GCS PATCH semantics: named keys are set, a null value removes its key, a null map clears all."""
    if patch is None:
        return {}
    merged = dict(current or {})
    for k, v in patch.items():
        if v is None:
            merged.pop(k, None)
        else:
            merged[k] = v
    return merged


def hold_error(b, name, m):
    for key, label in (("temporaryHold", "Temporary"), ("eventBasedHold", "Event-Based")):
        if m.get(key):
            return error(403, "forbidden", f"Object '{b}/{name}' is under active {label} hold and cannot "
                                           "be deleted, overwritten or archived until hold is removed.")
    return None


class Shim:
    def __init__(self, upstream, public, delay_ms=0):
        self.up, self.public, self.delay = Upstream(upstream), public.rstrip("/"), delay_ms / 1000.0
        self.lock = threading.RLock()
        self.buckets, self.sessions = {}, {}
        self.fail = {"count": 0, "status": 503}
        self.stats_lock = threading.Lock()
        self.reset_stats()

    # ---- plumbing -------------------------------------------------------
    def reset_stats(self):
        self.stats = {"requests": 0, "batch_parts": 0, "by_method": {}, "parts_by_method": {}}

    def count(self, method, part):
        with self.stats_lock:
            self.stats["batch_parts" if part else "requests"] += 1
            by = self.stats["parts_by_method" if part else "by_method"]
            by[method] = by.get(method, 0) + 1

    def handle(self, req):
        control = req.path.startswith("/_shim/")
        if not control:
            self.count(req.method, False)
        try:
            resp = self.dispatch(req, top=True)
        except Exception as e:  # an answer, never a dropped connection
            traceback.print_exc()
            resp = error(500, "internalError", f"gcs_shim: {e!r}")
        if self.delay and not control:
            time.sleep(self.delay)
        return resp

    def dispatch(self, req, top=False):
        if req.path.startswith("/_shim/"):
            return self.control(req, req.path[len("/_shim/"):])
        if req.method == "POST" and req.path == "/batch/storage/v1" and top:
            return self.batch(req)
        with self.stats_lock:
            only = self.fail.get("bucket")
            if self.fail["count"] > 0 and (not only or f"/b/{only}/" in req.path + "/"):
                self.fail["count"] -= 1
                s = self.fail["status"]
                return error(s, REASONS.get(s, "backendError"), f"gcs_shim: injected fault ({s})")
        for method, pattern, name in ROUTES:
            m = re.fullmatch(pattern, req.path)
            if m and req.method == method:
                return getattr(self, name)(req, *map(unquote, m.groups()))
        return self.forward(req)

    def forward(self, req, target=None, body=None):
        headers = {k: v for k, v in req.headers.items() if k not in HOP}
        data = req.body if body is None else body
        r = self.up.request(req.method, target or req.target, data if data or req.method in ("POST", "PUT", "PATCH") else None, headers)
        r.headers = [(k, v) for k, v in r.headers if k.lower() not in HOP]
        r.headers = [(k, v.replace(self.up.base, self.public) if k.lower() == "location" else v) for k, v in r.headers]
        return r

    def bucket(self, b):
        with self.lock:
            return self.buckets.setdefault(b, BucketState())

    def flags(self, bs, b):
        """Load versioning / defaultEventBasedHold from the emulator once; False if no bucket."""
        if bs.versioning is None:
            res = self.up.get_json(f"/storage/v1/b/{qn(b)}")
            if res is None:
                return False
            self.take_flags(bs, res)
        return True

    @staticmethod
    def take_flags(bs, res):
        bs.versioning = bool((res.get("versioning") or {}).get("enabled"))
        bs.debh = bool(res.get("defaultEventBasedHold"))

    def obj_get(self, b, name, gen=None):
        return self.up.get_json(f"/storage/v1/b/{qn(b)}/o/{qn(name)}" + (f"?generation={gen}" if gen else ""))

    def prune(self, bs):
        now = time.time()
        for key in [k for k, e in bs.soft.items() if e["hard"] <= now]:
            del bs.soft[key]
            bs.tomb.add(key)

    def inject(self, bs, obj):
        m = bs.meta.get((obj.get("name"), int(obj.get("generation") or 0)), {})
        obj["metageneration"] = str(m.get("metageneration", 1))
        for key in ("temporaryHold", "eventBasedHold"):
            if m.get(key):
                obj[key] = True
            else:
                obj.pop(key, None)
        for key in ("retention", "kmsKeyName", "metadata"):
            if m.get(key) is not None:
                obj[key] = m[key]
        if obj.get("metadata") == {}:
            del obj["metadata"]
        for key in ("selfLink", "mediaLink"):
            if isinstance(obj.get(key), str):
                obj[key] = obj[key].replace(self.up.base, self.public)
        return obj

    # ---- buckets --------------------------------------------------------
    def merge_bucket(self, bs, res):
        res.update(bs.extra)
        res["metageneration"] = str(bs.metageneration)
        if isinstance(res.get("selfLink"), str):
            res["selfLink"] = res["selfLink"].replace(self.up.base, self.public)
        return res

    @staticmethod
    def keep_fields(extra, body, fields):
        now = rfc3339(time.time())
        for k in fields:
            if k not in body:
                continue
            v = body[k]
            if v is None:
                extra.pop(k, None)
                continue
            if k == "retentionPolicy" and isinstance(v, dict):
                v = {**v, "effectiveTime": v.get("effectiveTime", now), "isLocked": v.get("isLocked", False)}
            if k == "softDeletePolicy" and isinstance(v, dict):
                v = {**v, "effectiveTime": v.get("effectiveTime", now)}
            extra[k] = v

    def bucket_create(self, req):
        body = json_body(req)
        if body is None:
            return invalid("Invalid JSON in the request body")
        r = self.forward(req)
        if r.status != 200:
            return normalize(r)
        res = json.loads(r.body)
        with self.lock:
            old = self.buckets.get(res["name"])
            bs = self.buckets[res["name"]] = BucketState(old.faults if old else None)
            self.keep_fields(bs.extra, body, BUCKET_FIELDS)
            self.take_flags(bs, res)
            return Resp.json(200, self.merge_bucket(bs, res))

    def bucket_list(self, req):
        r = self.forward(req)
        if r.status != 200:
            return normalize(r)
        res = json.loads(r.body)
        with self.lock:
            for item in res.get("items", []):
                if item.get("name") in self.buckets:
                    self.merge_bucket(self.buckets[item["name"]], item)
        return Resp.json(200, res)

    def bucket_get(self, req, b):
        r = self.forward(req)
        if r.status != 200:
            return normalize(r)
        res = json.loads(r.body)
        with self.lock:
            bs = self.bucket(b)
            self.take_flags(bs, res)
            return Resp.json(200, self.merge_bucket(bs, res))

    def bucket_patch(self, req, b):
        body = json_body(req)
        if body is None:
            return invalid("Invalid JSON in the request body")
        with self.lock:
            bs = self.bucket(b)
            if not self.flags(bs, b):
                return error(404, "notFound", f"The specified bucket does not exist: {b}")
            err = preconditions({k: v for k, v in req.q.items() if "Metageneration" in k}, bs.metageneration, 0)
            if err:
                return err
            # The emulator writes both flags on every PATCH: always send them.
            versioning = body["versioning"] if "versioning" in body else {"enabled": bs.versioning}
            send = {"versioning": versioning or {"enabled": False},
                    "defaultEventBasedHold": bool(body.get("defaultEventBasedHold", bs.debh))}
            r = self.forward(req, target=f"/storage/v1/b/{qn(b)}", body=json.dumps(send).encode())
            if r.status != 200:
                return normalize(r)
            self.keep_fields(bs.extra, body, [k for k in body if k not in FLAG_FIELDS + ("name", "id", "kind")])
            bs.metageneration += 1
            res = json.loads(r.body)
            self.take_flags(bs, res)
            return Resp.json(200, self.merge_bucket(bs, res))

    def bucket_delete(self, req, b):
        r = self.forward(req)
        if r.status == 412:
            return error(409, "conflict", "The bucket you tried to delete is not empty.")
        if r.status >= 300:
            return normalize(r)
        with self.lock:
            self.buckets.pop(b, None)
        return Resp(204)

    # ---- objects: read --------------------------------------------------
    def get_object(self, req, b, name):
        gen = req.q.get("generation")
        if gen is not None and not gen.isdigit():
            return invalid("invalid generation ID")
        media = req.q.get("alt") == "media" or (req.path.startswith("/download/") and req.q.get("alt") != "json")
        bs = self.bucket(b)
        with self.lock:
            self.prune(bs)
            key = (name, int(gen)) if gen is not None else None
            if truthy(req.q.get("softDeleted")):
                if key is None:
                    return invalid("A generation is required with softDeleted=true.")
                entry = bs.soft.get(key)
                return Resp.json(200, entry["resource"]) if entry and not media else not_found(b, name, gen)
            if key in bs.tomb or key in bs.soft:
                return not_found(b, name, gen)
        r = self.forward(req)
        if r.status != 200 or media or "json" not in (r.header("content-type") or ""):
            return normalize(r) if not media else r
        with self.lock:
            return Resp.json(200, self.inject(bs, json.loads(r.body)))

    def list_objects(self, req, b):
        q = req.q
        soft, versions = truthy(q.get("softDeleted")), truthy(q.get("versions"))
        if soft and versions:
            return invalid("softDeleted and versions cannot both be true.")
        size = q.get("maxResults", "1000")
        if not size.isdigit() or not 1 <= int(size) <= 1000:
            return invalid(f"Invalid value for maxResults: {size}")
        try:
            after = json.loads(base64.urlsafe_b64decode(q["pageToken"] + "==")) if q.get("pageToken") else None
            after = (after[0], int(after[1])) if after is not None else None
        except (ValueError, TypeError, IndexError, KeyError):
            return invalid("Invalid pageToken")
        prefix = q.get("prefix", "")
        bs = self.bucket(b)
        with self.lock:
            self.prune(bs)
            if soft:
                items = [dict(e["resource"]) for (n, _), e in bs.soft.items() if n.startswith(prefix)]
            else:
                items = self.live_listing(req, b, bs, versions)
                if isinstance(items, Resp):
                    return items
        return self.page(items, q, prefix, after, int(size))

    def live_listing(self, req, b, bs, versions):
        params = [("prefix", req.q.get("prefix", ""))] + ([("versions", "true")] if versions else [])
        params += [(k, v) for k, v in req.q.items() if k in ("startOffset", "endOffset", "matchGlob")]
        r = self.up.request("GET", f"/storage/v1/b/{qn(b)}/o?" + "&".join(f"{k}={qn(v)}" for k, v in params))
        if r.status != 200:
            return normalize(r)
        seen = {}
        for item in json.loads(r.body).get("items", []):
            key = (item["name"], int(item["generation"]))
            if key in bs.tomb or key in bs.soft or fault(bs, "hide_from_listing", *key):
                continue
            if key not in seen or "timeDeleted" in seen[key]:
                seen[key] = item
        return [self.inject(bs, item) for item in seen.values()]

    @staticmethod
    def page(items, q, prefix, after, size):
        delim, prefixes, kept = q.get("delimiter"), set(), []
        for item in items:
            rest = item["name"][len(prefix):]
            i = rest.find(delim) if delim else -1
            if i >= 0:
                prefixes.add(prefix + rest[:i + len(delim)])
                if not (truthy(q.get("includeTrailingDelimiter")) and i + len(delim) == len(rest)):
                    continue
            kept.append(item)
        kept.sort(key=lambda it: (it["name"], int(it["generation"])))
        if after is not None:
            kept = [it for it in kept if (it["name"], int(it["generation"])) > after]
        res = {"kind": "storage#objects"}
        if after is None and prefixes:
            res["prefixes"] = sorted(prefixes)
        if kept[:size]:
            res["items"] = kept[:size]
        if len(kept) > size:
            last = kept[size - 1]
            token = json.dumps([last["name"], last["generation"]]).encode()
            res["nextPageToken"] = base64.urlsafe_b64encode(token).decode().rstrip("=")
        return Resp.json(200, res)

    # ---- objects: change ------------------------------------------------
    def patch_object(self, req, b, name):
        body = json_body(req)
        if body is None:
            return invalid("Invalid JSON in the request body")
        bs = self.bucket(b)
        with self.lock:
            self.prune(bs)
            target = self.find_generation(req, b, name, bs)
            if isinstance(target, Resp):
                return target
            g, res = target
            m = bs.meta.setdefault((name, g), {"metageneration": 1})
            err = preconditions(req.q, m["metageneration"], g) or self.retention_change(b, name, m, body)
            if err:
                return err
            for key in ("temporaryHold", "eventBasedHold", "retention"):
                if key in body:
                    m[key] = body[key]
            if "metadata" in body:
                m["metadata"] = merge_metadata(m.get("metadata", res.get("metadata")), body["metadata"])
            m["metageneration"] += 1
            res["updated"] = rfc3339(time.time())
            return Resp.json(200, self.inject(bs, res))

    @staticmethod
    def retention_change(b, name, m, body):
        cur = m.get("retention") or {}
        if "retention" not in body or cur.get("mode") != "Locked":
            return None
        new = body["retention"] or {}
        if new.get("mode") != "Locked" or parse_time(new.get("retainUntilTime", "1970-01-01T00:00:00Z")) < parse_time(cur["retainUntilTime"]):
            return error(403, "forbidden", f"Object '{b}/{name}' has a Locked retention that cannot be removed or shortened.")
        return None

    def find_generation(self, req, b, name, bs):
        """(generation, resource) the request names (`generation`, else the live one), or a 404."""
        gen = req.q.get("generation")
        if gen is not None and not gen.isdigit():
            return invalid("invalid generation ID")
        if gen is not None and ((name, int(gen)) in bs.tomb or (name, int(gen)) in bs.soft):
            return not_found(b, name, gen)
        res = self.obj_get(b, name, gen)
        return not_found(b, name, gen) if res is None else (int(res["generation"]), res)

    def protection(self, bs, b, name, g, res):
        """403 while a hold, the bucket's retention policy or the object's retention keeps g."""
        m = bs.meta.get((name, g), {})
        err = hold_error(b, name, m)
        if err:
            return err
        now, until = time.time(), 0.0
        period = (bs.extra.get("retentionPolicy") or {}).get("retentionPeriod")
        if period and res.get("timeCreated"):
            until = parse_time(res["timeCreated"]) + int(period)
        if (m.get("retention") or {}).get("retainUntilTime"):
            until = max(until, parse_time(m["retention"]["retainUntilTime"]))
        if until > now:
            return error(403, "retentionPolicyNotMet", f"Object '{b}/{name}' is subject to bucket's retention policy "
                                                       f"or object retention and cannot be deleted or overwritten until {rfc3339(until)}")
        return None

    def delete_object(self, req, b, name):
        bs = self.bucket(b)
        with self.lock:
            self.prune(bs)
            if name in bs.faults["rewrite_before_delete"]:
                bs.faults["rewrite_before_delete"].remove(name)
                self.up.request("POST", f"/upload/storage/v1/b/{qn(b)}/o?uploadType=media&name={qn(name)}",
                                b"rewritten after approval", {"Content-Type": "application/octet-stream"})
            live = self.obj_get(b, name)
            target = self.find_generation(req, b, name, bs) if "generation" in req.q else (
                (int(live["generation"]), live) if live else not_found(b, name))
            if isinstance(target, Resp):
                return target
            g, res = target
            live_gen = int(live["generation"]) if live else 0
            err = (preconditions(req.q, bs.meta.get((name, g), {}).get("metageneration", 1), live_gen)
                   or self.protection(bs, b, name, g, res))
            if err:
                return err
            if fault(bs, "keep_on_delete", name, g):
                return Resp(204)
            if fault(bs, "hide_after_delete", name, g):
                bs.faults["hide_from_listing"].add((name, g))
                return Resp(204)
            self.flags(bs, b)
            if "generation" not in req.q and bs.versioning:
                r = self.up.request("DELETE", f"/storage/v1/b/{qn(b)}/o/{qn(name)}")
                return normalize(r) if r.status >= 300 else Resp(204)
            return self.delete_permanently(bs, b, name, g, res, g == live_gen)

    def delete_permanently(self, bs, b, name, g, res, is_live):
        policy = bs.extra.get("softDeletePolicy")
        duration = int((policy or {}).get("retentionDurationSeconds") or 0) if isinstance(policy, dict) else 0
        content = None
        if duration > 0:
            content = self.up.request("GET", f"/download/storage/v1/b/{qn(b)}/o/{qn(name)}?generation={g}&alt=media").body
        if is_live:
            r = self.up.request("DELETE", f"/storage/v1/b/{qn(b)}/o/{qn(name)}")
            if r.status >= 300:
                return normalize(r)
        if duration > 0:
            now = time.time()
            resource = self.inject(bs, dict(res))
            resource.pop("timeDeleted", None)
            resource.update(softDeleteTime=rfc3339(now), hardDeleteTime=rfc3339(now + duration))
            bs.soft[(name, g)] = {"resource": resource, "content": content, "hard": now + duration}
        else:
            bs.tomb.add((name, g))
        return Resp(204)

    def restore(self, req, b, name):
        gen = req.q.get("generation")
        if gen is None or not gen.isdigit():
            return invalid("A generation is required to restore an object.")
        bs = self.bucket(b)
        with self.lock:
            self.prune(bs)
            entry = bs.soft.get((name, int(gen)))
            if entry is None:
                return not_found(b, name, gen)
            live = self.obj_get(b, name)
            err = preconditions(req.q, int(live["metageneration"]) if live else 0, int(live["generation"]) if live else 0)
            if err:
                return err
            old = entry["resource"]
            info = {"name": name, "contentType": old.get("contentType", "application/octet-stream")}
            if old.get("metadata"):
                info["metadata"] = old["metadata"]
            bd = "shim" + secrets.token_hex(8)
            body = (f"--{bd}\r\nContent-Type: application/json\r\n\r\n{json.dumps(info)}\r\n--{bd}\r\n"
                    f"Content-Type: {info['contentType']}\r\n\r\n").encode() + entry["content"] + f"\r\n--{bd}--\r\n".encode()
            r = self.up.request("POST", f"/upload/storage/v1/b/{qn(b)}/o?uploadType=multipart", body,
                                {"Content-Type": f"multipart/related; boundary={bd}"})
            if r.status != 200:
                return normalize(r)
            del bs.soft[(name, int(gen))]
            bs.tomb.add((name, int(gen)))
            obj = json.loads(r.body)
            self.record_upload(bs, obj, {k: v for k, v in old.items() if k in ("metadata", "kmsKeyName")}, None)
            return Resp.json(200, self.inject(bs, obj))

    # ---- uploads ----------------------------------------------------------
    def upload(self, req, b):
        bs = self.bucket(b)
        if "upload_id" in req.q:                     # a resumable session's data
            r = self.forward(req)
            session = self.sessions.get(req.q["upload_id"])
            if r.status in (200, 201) and session and "json" in (r.header("content-type") or ""):
                with self.lock:
                    self.sessions.pop(req.q["upload_id"], None)
                    obj = json.loads(r.body)
                    self.record_upload(bs, obj, *session)
                    return Resp.json(r.status, self.inject(bs, obj))
            return normalize(r)
        name, info = self.upload_info(req)
        with self.lock:
            live = self.obj_get(b, name) if name else None
            m = bs.meta.get((name, int(live["generation"])), {}) if live else {}
            err = preconditions(req.q, m.get("metageneration", 1) if live else 0, int(live["generation"]) if live else 0)
            err = err or hold_error(b, name, m)
            if err:
                return err
            r = self.forward(req)
            if r.status != 200:
                return normalize(r)
            if req.q.get("uploadType") == "resumable":
                uid = dict(parse_qsl(urlsplit(r.header("location") or "").query)).get("upload_id")
                self.sessions[uid] = (info, req.q.get("kmsKeyName"))
                return r
            obj = json.loads(r.body)
            self.record_upload(bs, obj, info, req.q.get("kmsKeyName"))
            return Resp.json(200, self.inject(bs, obj))

    @staticmethod
    def upload_info(req):
        info = {}
        try:
            if req.q.get("uploadType") == "multipart":
                parts = split_multipart(req.body, boundary_of(req.headers.get("content-type")) or "\0")
                info = json.loads(parts[0][2] or b"{}") if parts else {}
            elif req.q.get("uploadType") == "resumable" and req.body.strip():
                info = json.loads(req.body)
        except ValueError:
            info = {}
        return req.q.get("name") or info.get("name"), info

    def record_upload(self, bs, obj, info, kms):
        self.flags(bs, obj["bucket"])
        m = {"metageneration": 1}
        kms = kms or info.get("kmsKeyName") or (bs.extra.get("encryption") or {}).get("defaultKmsKeyName")
        if kms:
            m["kmsKeyName"] = kms
        for key in ("temporaryHold", "eventBasedHold"):
            if info.get(key):
                m[key] = True
        if bs.debh:
            m["eventBasedHold"] = True
        for key in ("retention", "metadata"):
            if info.get(key) is not None:
                m[key] = info[key]
        bs.meta[(obj["name"], int(obj["generation"]))] = m

    # ---- batch ------------------------------------------------------------
    def batch(self, req):
        bd = boundary_of(req.headers.get("content-type"))
        if not bd:
            return invalid("A batch request needs a multipart/mixed Content-Type with a boundary.")
        parts = split_multipart(req.body, bd)
        if len(parts) > 100:
            return invalid(f"A batch request may hold at most 100 calls; this one holds {len(parts)}.")
        out_bd = "batch_" + secrets.token_hex(12)
        out = []
        for _, headers, data in parts:
            lines, inner_headers, body = split_head(data, start_line=True)
            method, target, *_ = lines[0].decode("latin-1").split(" ") if lines else ("GET", "/")
            if "content-length" in inner_headers and inner_headers["content-length"].isdigit():
                body = body[:int(inner_headers["content-length"])]
            self.count(method, True)
            sub = Req(method, target, inner_headers.items(), body)
            r = self.dispatch(sub)
            cid = headers.get("content-id")
            head = "Content-Type: application/http\r\n"
            if cid:
                head += f"Content-ID: <response-{cid.strip('<>')}>\r\n"
            r.headers = [(k, v) for k, v in r.headers if k.lower() not in HOP]
            status = f"HTTP/1.1 {r.status} {http.client.responses.get(r.status, 'Status')}\r\n"
            hdrs = "".join(f"{k}: {v}\r\n" for k, v in r.headers) + f"Content-Length: {len(r.body)}\r\n"
            out.append(f"--{out_bd}\r\n{head}\r\n{status}{hdrs}\r\n".encode() + r.body + b"\r\n")
        out.append(f"--{out_bd}--\r\n".encode())
        return Resp(200, [("Content-Type", f"multipart/mixed; boundary={out_bd}")], b"".join(out))

    # ---- test controls ----------------------------------------------------
    def control(self, req, what):
        if req.method == "GET" and what == "stats":
            with self.stats_lock:
                return Resp.json(200, self.stats)
        if req.method == "POST" and what == "stats/reset":
            with self.stats_lock:
                self.reset_stats()
            return Resp(204)
        if req.method == "POST" and what == "reset":
            with self.lock:
                for b, bs in self.buckets.items():
                    if req.q.get("bucket") in (None, b):
                        bs.faults = empty_faults()
                if req.q.get("bucket") is None:
                    self.fail = {"count": 0, "status": 503}
            return Resp(204)
        if req.method == "POST" and what == "faults":
            return self.set_faults(req)
        return error(404, "notFound", f"No shim control {req.method} /_shim/{what}")

    def set_faults(self, req):
        spec = json_body(req)
        if spec is None:
            return invalid("Invalid JSON in the request body")
        new = {}
        for kind in ("keep_on_delete", "hide_from_listing", "hide_after_delete", "rewrite_before_delete"):
            for ref in spec.get(kind) or []:
                b, name, gen = parse_ref(ref)
                f = new.setdefault(b, empty_faults())
                f[kind].append(name) if kind == "rewrite_before_delete" else f[kind].add((name, gen))
        with self.lock:
            for b, f in new.items():
                self.bucket(b).faults = f
        if spec.get("fail_next"):
            with self.stats_lock:
                self.fail = {"count": int(spec["fail_next"].get("count", 1)),
                             "status": int(spec["fail_next"].get("status", 503)),
                             "bucket": spec["fail_next"].get("bucket")}
        return Resp(204)


B = r"/storage/v1/b/([^/]+)"
ROUTES = [
    ("POST", r"/storage/v1/b", "bucket_create"),
    ("GET", r"/storage/v1/b", "bucket_list"),
    ("GET", B, "bucket_get"),
    ("PATCH", B, "bucket_patch"),
    ("DELETE", B, "bucket_delete"),
    ("GET", B + r"/o", "list_objects"),
    ("POST", B + r"/o/([^/]+)/restore", "restore"),
    ("GET", B + r"/o/([^/]+)", "get_object"),
    ("GET", r"/download" + B + r"/o/([^/]+)", "get_object"),
    ("PATCH", B + r"/o/([^/]+)", "patch_object"),
    ("DELETE", B + r"/o/([^/]+)", "delete_object"),
    ("POST", r"/upload" + B + r"/o", "upload"),
    ("PUT", r"/upload" + B + r"/o", "upload"),
]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "gcs-shim"

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def serve(self):
        req = Req(self.command, self.path, self.headers.items(), self.read_body())
        resp = self.server.shim.handle(req)
        self.send_response(resp.status)
        for k, v in resp.headers:
            if k.lower() not in HOP:
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(resp.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = serve

    def log_message(self, *args):
        pass


def main():
    p = argparse.ArgumentParser(description="GCS JSON API shim in front of fake-gcs-server")
    p.add_argument("--listen", required=True, help="HOST:PORT")
    p.add_argument("--upstream", required=True, help="http://HOST:PORT of fake-gcs-server")
    p.add_argument("--delay-ms", type=int, default=0, help="wait this long before each answer")
    a = p.parse_args()
    host, _, port = a.listen.rpartition(":")
    # The default listen backlog (5) overflows when a test run's clients
    # connect at once, and the kernel then resets their connections.
    ThreadingHTTPServer.request_queue_size = 1024
    server = ThreadingHTTPServer((host, int(port)), Handler)
    server.daemon_threads = True
    server.shim = Shim(a.upstream, f"http://{host}:{server.server_address[1]}", a.delay_ms)
    print(f"gcs_shim: http://{host}:{server.server_address[1]} -> {a.upstream}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
