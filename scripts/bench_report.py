"""Turn scripts/bench.sh results into BENCHMARKS.md (ratios decom / peer)."""
import json, os, platform, subprocess, sys

R, size, files, versions = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

def medians(name):
    d = json.load(open(os.path.join(R, name)))
    return {r["command"]: r["median"] for r in d["results"]}

def mem(name):
    try:
        return f"{int(open(os.path.join(R, name)).read().split()[-1]) / 1024:.0f} MiB"
    except Exception:
        return "?"

ow, h, t = medians("overwrite.json"), medians("hash.json"), medians("trace.json")
n, aws_s, aws_left, decom_s, decom_left = open(os.path.join(R, "s3")).read().split()
cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
disk = subprocess.run(["sh", "-c", "df -T /var/tmp | tail -1 | awk '{print $2}'"], capture_output=True, text=True).stdout.strip()

def row(what, decom, peer, target, note=""):
    what = what.replace("|", "\\|")
    r = decom / peer
    return f"| {what} | {decom:.2f} s | {peer:.2f} s | **{r:.2f}** | {target} | {note} |"

out = []
out.append("# Benchmarks\n")
out.append(f"Produced by `scripts/bench.sh` (BENCH_SIZE_MIB={size}, BENCH_FILES={files}, BENCH_VERSIONS={versions}); "
           "medians of hyperfine runs, all measured in the same run on the same machine.\n")
out.append(f"Machine: {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, /var/tmp on {disk}.\n")
out.append("| case | decom | peer | ratio decom/peer | target | peak memory (decom) |")
out.append("|---|---|---|---|---|---|")
raw = ow["dd write"] + ow["dd direct read"]
out.append(row(f"nist-clear {size} MiB (1 pass + read-back) vs dd write + direct read", ow["decom nist-clear"], raw, "≤ 1.1", mem("mem-nist")))
out.append(row(f"dod-3pass {size} MiB (verified) vs shred -n 3 (unverified)", ow["decom dod-3pass"], ow["shred -n 3"], "≤ 1.0"))
out.append(row(f"nist-clear vs shred -n 1 (unverified)", ow["decom nist-clear"], ow["shred -n 1"], "—"))
out.append(row(f"SHA-256 of {size} MiB vs openssl", h["decom hash"], h["openssl"], "throughput ≥ 0.9× (ratio ≤ 1.11)", mem("mem-hash")))
out.append(row(f"SHA-256 of {size} MiB vs sha256sum", h["decom hash"], h["sha256sum"], "—"))
out.append(row(f"trace {files} files, match all (walk + hash all) vs find | xargs sha256sum", t["decom trace (all)"], t["find | xargs sha256sum"], "—", mem("mem-trace")))
out.append(row(f"trace {files} files, match hash vs find | xargs sha256sum", t["decom trace (hash)"], t["find | xargs sha256sum"], "≤ 0.5"))
out.append(row(f"trace {files} files, match hash vs find -type f", t["decom trace (hash)"], t["find -type f"], "—"))
keys = int(n) // 2  # s3fill writes two versions per key
aws_rate, decom_rate = keys / float(aws_s), keys / float(decom_s)
out.append(f"| S3 purge of {n} versions ({keys} keys) on moto | {float(decom_s):.1f} s ({decom_rate:.0f} keys/s), left {decom_left} | "
           f"aws s3 rm --recursive {float(aws_s):.1f} s ({aws_rate:.0f} keys/s), left {aws_left} | **{decom_rate / aws_rate:.2f}× the rate** | ≥ 10× | {mem('mem-s3')} |")
pages, list_s, head_rate = open(os.path.join(R, "s3-probe")).read().split()
all_req, head_req, list_req, del_req = map(int, open(os.path.join(R, "s3-requests")).read().split())
head_rate = float(head_rate)
bound = float(list_s) + head_req / head_rate
s3_note = (f"S3 ceiling of this server, same run: one full version listing of the filled bucket took {float(list_s):.1f} s "
           f"({pages} pages), and it answered at most {head_rate:.0f} HEADs of absent keys per second "
           f"(better of 1 and 4 connections: moto handles one request at a time). decom sent {all_req} requests: "
           f"{head_req} HEAD (the absence proof, one per purged key), {list_req} version-list pages (before and after), "
           f"{del_req} DeleteObjects. At the server's rates one full listing and those HEADs alone take {bound:.1f} s; "
           f"decom took {float(decom_s):.1f} s. A client that lists once and HEADs each purged key, as the spec's "
           f"absence proof requires, cannot beat aws s3 rm by more than {float(aws_s) / bound:.2f}× on this server.")
out.append("")
out.append(s3_note)
out.append("")
out.append("Raw medians (s): " + ", ".join(f"{k}: {v:.3f}" for d in (ow, h, t) for k, v in d.items()))
print("\n".join(out))
