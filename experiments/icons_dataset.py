"""A real captioned image set from a Debian package: the Adwaita icon theme's named icons
(``/usr/share/icons/Adwaita``, package adwaita-icon-theme), as an imagefolder for ``fourm-recipe
folder`` (issue 18's own-data bench). Never committed: it is rebuilt from the installed package.

    python experiments/icons_dataset.py --out data/icons [--theme /usr/share/icons/Adwaita]

Each icon (the largest raster size available, composited on white) gets the caption
"<name words>, <context>", e.g. "folder pictures, places"; symbolic variants say "symbolic".
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from PIL import Image

SIZES = ("512x512", "256x256", "96x96", "64x64", "48x48")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--theme", default="/usr/share/icons/Adwaita")
    p.add_argument("--out", default="data/icons")
    args = p.parse_args()
    theme, out = Path(args.theme), Path(args.out)
    best: dict[tuple[str, str], Path] = {}
    for size in reversed(SIZES):  # larger sizes replace smaller ones
        for path in (theme / size).glob("*/*.png"):
            best[(path.parent.name, path.name)] = path
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for (context, name), path in sorted(best.items()):
        stem = name.removesuffix(".png").removesuffix(".symbolic")
        words = stem.replace("-symbolic", " symbolic").replace("-", " ").replace("_", " ")
        image = Image.open(path).convert("RGBA")
        canvas = Image.new("RGBA", image.size, (255, 255, 255, 255))
        canvas.alpha_composite(image)
        file_name = f"{context}_{stem}.png"
        canvas.convert("RGB").resize((64, 64), Image.Resampling.LANCZOS).save(out / file_name)
        rows.append({"file_name": file_name, "text": f"{words}, {context}"})
    (out / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"wrote {len(rows)} icons to {out}")


if __name__ == "__main__":
    main()
