# A realistic tree of N files of SIZE bytes: folders to depth 6 with a varied fan-out, files
# spread over them with heavy-tailed counts (most folders hold a few files, some thousands),
# names of varied length and extension. Deterministic for a given seed.
import os, random, sys
root, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(23)
folders = [""]
frontier = [""]
for depth in range(1, 7):
    nxt = []
    for parent in frontier:
        for i in range(rng.choice([0, 1, 2, 3, 4, 5, 6, 8, 12])):
            stem = rng.choice(["photos", "src", "docs", "notes", "2024", "2025", "mail", "cache", "proj", "lib", "assets", "old"])
            nxt.append(os.path.join(parent, f"{stem}-{depth}{i}"))
    if len(folders) + len(nxt) > 30000:
        nxt = nxt[: 30000 - len(folders)]
    folders += nxt
    frontier = nxt
weights = [rng.paretovariate(1.1) for _ in folders]
total = sum(weights)
counts = [min(int(w / total * n), 10000) for w in weights]
i = 0
while sum(counts) < n:  # what the cap took, spread over the folders not at it
    short = n - sum(counts)
    for k in range(len(counts)):
        if short == 0:
            break
        if counts[(i + k) % len(counts)] < 10000:
            counts[(i + k) % len(counts)] += 1
            short -= 1
    i += 1
exts = [".jpg", ".txt", ".md", ".rs", ".json", ".heic", ".pdf", ""]
made = 0
for folder, c in zip(folders, counts):
    p = os.path.join(root, folder)
    os.makedirs(p, exist_ok=True)
    for j in range(c):
        name = f"{rng.choice(['IMG_', 'file-', 'note ', 'x', 'report_2025_'])}{j:05d}{rng.choice(exts)}"
        with open(os.path.join(p, name), "wb") as fh:
            fh.write(os.urandom(size))
        made += 1
depths = {}
for f in folders:
    d = 0 if not f else f.count(os.sep) + 1
    depths[d] = depths.get(d, 0) + 1
cs = sorted(counts)
print(f"{made} files in {len(folders)} folders; folders per depth {dict(sorted(depths.items()))}; "
      f"files per folder: median {cs[len(cs)//2]}, 90th {cs[len(cs)*9//10]}, max {cs[-1]}")
