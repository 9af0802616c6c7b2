"""Turn scripts/bench.sh results into BENCHMARKS.md (ratios decom / peer)."""
import json, os, platform, re, subprocess, sys

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

def phases(path, name):
    """Seconds of the pass, the read-back and the removal of file `name` in an
    `strace -f -ttt -T` log of one decom execute (each line: pid, entry time,
    call, duration)."""
    calls = []
    for line in open(path):
        m = re.match(r"\d+\s+([\d.]+) (\w+)\((.*)\) += (\S+).*<([\d.]+)>$", line)
        if m:
            calls.append((float(m[1]), m[2], m[3], m[4], float(m[5])))
    opened = next(c for c in calls if c[1] == "openat" and f'"{name}"' in c[2])
    fd = opened[3]
    fsyncs = [c for c in calls if c[1] == "fsync" and c[2] == fd and c[0] > opened[0]]
    renamed = next(c for c in calls if c[1] == "renameat2" and c[0] > opened[0])
    # The read-back ends when it takes O_DIRECT off the handle again.
    direct_off = [c for c in calls if c[1] == "fcntl" and c[2].startswith(f"{fd}, F_SETFL")
                  and "O_DIRECT" not in c[2] and c[0] < renamed[0]][-1]
    unlinked = next(c for c in calls if c[1] == "unlinkat" and c[0] > renamed[0])
    dir_fsync = next(c for c in calls if c[1] == "fsync" and c[0] > unlinked[0])
    return {
        "pass": fsyncs[0][0] + fsyncs[0][4] - opened[0],
        # fsync + drop cache + O_DIRECT read, up to restoring the flags
        "read-back": direct_off[0] - fsyncs[1][0],
        "removal": dir_fsync[0] + dir_fsync[4] - renamed[0],
    }

def cpu_per_gib(name, gib):
    """CPU seconds (user + system) per GiB of one decom run, or '—'."""
    try:
        u, s = map(float, open(os.path.join(R, name)).read().split()[-2:])
        return f"{(u + s) / gib:.2f}"
    except Exception:
        return "—"

def row(what, decom, peer, target, note="", cpu_gib="—"):
    what = what.replace("|", "\\|")
    r = decom / peer
    return f"| {what} | {decom:.2f} s | {peer:.2f} s | **{r:.2f}** | {target} | {cpu_gib} | {note} |"

out = []
out.append("# Benchmarks\n")
out.append(f"Produced by `scripts/bench.sh` (BENCH_SIZE_MIB={size}, BENCH_FILES={files}, BENCH_VERSIONS={versions}); "
           "medians of hyperfine runs, all measured in the same run on the same machine.\n")
out.append(f"Machine: {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, /var/tmp on {disk}.\n")
out.append("| case | decom | peer | ratio decom/peer | target | decom CPU s/GiB | peak memory (decom) |")
out.append("|---|---|---|---|---|---|---|")
gib = size / 1024
raw = ow["dd write"] + ow["dd direct read"]
out.append(row(f"nist-clear {size} MiB vs dd write + direct read + rm + sync (the same work: nist-clear also removes the file)", ow["decom nist-clear"], raw + ow["rm + sync"], "≤ 1.1", mem("mem-nist"), cpu_per_gib("cpu-nist", gib)))
out.append(row(f"dod-3pass {size} MiB (verified) vs shred -n 3 (unverified)", ow["decom dod-3pass"], ow["shred -n 3"], "≤ 1.0", "", cpu_per_gib("cpu-dod", gib)))
out.append(row(f"nist-clear {size} MiB (1 pass + read-back) vs dd write + direct read", ow["decom nist-clear"], raw, "—", "", cpu_per_gib("cpu-nist", gib)))
out.append(row(f"nist-clear vs shred -n 1 (unverified)", ow["decom nist-clear"], ow["shred -n 1"], "—"))
out.append(row(f"SHA-256 of {size} MiB vs openssl", h["decom hash"], h["openssl"], "throughput ≥ 0.9× (ratio ≤ 1.11)", mem("mem-hash")))
out.append(row(f"SHA-256 of {size} MiB vs sha256sum", h["decom hash"], h["sha256sum"], "—"))
out.append(row(f"trace {files} files, match all (walk + hash all) vs find | xargs sha256sum", t["decom trace (all)"], t["find | xargs sha256sum"], "—", mem("mem-trace")))
out.append(row(f"trace {files} files, match hash vs find | xargs sha256sum", t["decom trace (hash)"], t["find | xargs sha256sum"], "≤ 0.5"))
out.append(row(f"trace {files} files, match hash vs find -type f", t["decom trace (hash)"], t["find -type f"], "—"))
n4k, n1m = open(os.path.join(R, "small")).read().split()
for case, count, label, gib_case in (("4k", n4k, "4 KiB", int(n4k) * 4 / 1048576), ("1m", n1m, "1 MiB", int(n1m) / 1024)):
    sm = medians(f"small-{case}.json")
    out.append(row(f"nist-clear {int(count):,} files of {label} vs shred -u -n 1 (unverified, no record)", sm["decom nist-clear"], sm["shred -u -n 1"], "≤ 1.0" if case == "4k" else "—", "", cpu_per_gib(f"cpu-small-{case}", gib_case)))
    out.append(row(f"nist-clear {int(count):,} files of {label} vs find -delete (no overwrite)", sm["decom nist-clear"], sm["find -delete"], "—"))
keys = int(n) // 2  # s3fill writes two versions per key
aws_rate, decom_rate = keys / float(aws_s), keys / float(decom_s)
out.append(f"| S3 purge of {n} versions ({keys} keys) on moto | {float(decom_s):.1f} s ({decom_rate:.0f} keys/s), left {decom_left} | "
           f"aws s3 rm --recursive {float(aws_s):.1f} s ({aws_rate:.0f} keys/s), left {aws_left} | **{decom_rate / aws_rate:.2f}× the rate** | ≥ 10× | — | {mem('mem-s3')} |")
disk_t = ow["dd write"] + ow["dd direct read"]
cpu_t = h["openssl aes-256-ctr"] + h["openssl"]
limit = max(disk_t, cpu_t) + ow["rm + sync"]
limit_note = (f"The limit of this machine for nist-clear of {size} MiB: the larger of the disk's time (dd write + direct read, "
              f"{disk_t:.2f} s) and the time one core takes to generate the pass and hash it once (openssl aes-256-ctr + "
              f"openssl sha256 over the cached file, {cpu_t:.2f} s), plus rm + sync: {limit:.2f} s; decom, which "
              f"hashes on one core while it regenerates and compares on the other, took "
              f"{ow['decom nist-clear']:.2f} s ({ow['decom nist-clear'] / limit:.2f}x the limit).")
pages, list_s, head_rate = open(os.path.join(R, "s3-probe")).read().split()
all_req, head_req, list_req, del_req = map(int, open(os.path.join(R, "s3-requests")).read().split())
head_rate = float(head_rate)
bound = float(list_s) + head_req / head_rate
s3_note = (f"S3 ceiling of this server, same run: one full version listing of the filled bucket took {float(list_s):.1f} s "
           f"({pages} pages), and it answered at most {head_rate:.0f} HEADs of absent keys per second "
           f"(better of 1 and 4 connections: moto handles one request at a time). decom sent {all_req} requests: "
           f"{head_req} HEAD, {list_req} version-list pages (the listing before the purge and the absence proof's "
           f"listing after it), {del_req} DeleteObjects. At the server's rates those listings and HEADs alone take "
           f"{bound:.1f} s; decom took {float(decom_s):.1f} s, so on moto the listings bound it (see bench-s3.sh below "
           f"for the request counts through a latency proxy).")
runs = [phases(os.path.join(R, f), "model.bin") for f in sorted(os.listdir(R)) if f.startswith("nist.strace.")]
ph = {k: sorted(r[k] for r in runs)[len(runs) // 2] for k in runs[0]}
out.append("")
out.append(f"Where one nist-clear run of {size} MiB spends its time (medians of {len(runs)} more runs under `strace -T`, tracing only the calls that mark the phases), against the peer for each phase:")
out.append("")
out.append("| phase | decom | peer | ratio | target |")
out.append("|---|---|---|---|---|")
out.append(f"| overwrite pass (generate, write, fsync) | {ph['pass']:.2f} s | dd write {ow['dd write']:.2f} s | **{ph['pass'] / ow['dd write']:.2f}** | ≤ 1.1 |")
out.append(f"| overwrite pass | {ph['pass']:.2f} s | dd write of random data (source cached) {ow['dd write (random data)']:.2f} s | **{ph['pass'] / ow['dd write (random data)']:.2f}** | — |")
out.append(f"| read-back (fsync, O_DIRECT read, hash, compare with the regenerated stream) | {ph['read-back']:.2f} s | dd direct read {ow['dd direct read']:.2f} s | **{ph['read-back'] / ow['dd direct read']:.2f}** | ≤ 1.1 |")
out.append(f"| removal (rename, truncate, fsync, unlink, fsync dir) | {ph['removal']:.2f} s | rm + sync {ow['rm + sync']:.2f} s | **{ph['removal'] / ow['rm + sync']:.2f}** | — |")
out.append("")
out.append(limit_note)
out.append("")
out.append(s3_note)
out.append("")
out.append("Raw medians (s): " + ", ".join(f"{k}: {v:.3f}" for d in (ow, h, t) for k, v in d.items()))
print("\n".join(out))
