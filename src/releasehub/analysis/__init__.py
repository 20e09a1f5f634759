"""The access profile of a release: what it takes to run, use and build on a model.

This package turns the framework of "Beyond Release: Access Considerations for Generative AI
Systems" (Solaiman, Bommasani, Hendrycks et al., 2025) into numbers. It never reads weights:
only safetensors/GGUF headers, `config.json`, the model card and the file list.

Layers, from the bottom up (each imports only the ones above it in this list):

- `readers/`       byte sources (local file, HTTP ranges, a stored blob) and the safetensors and
                   GGUF header readers. `WeightsSummary` is their result.
- `architecture`   `config.json` (or GGUF metadata) -> shapes and parameter counts.
- `hardware`       the accelerator catalogue (memory, watts, price).
- `resourcing`     pure calculators: weight memory, KV cache, GPUs by memory and deployable,
                   fine-tuning memory, energy and money. No I/O.
- `paper`          the paper's own scenario and figures, and its errata with the correct figure.
- `usability`, `utility`, `openness`   judgements from the card, files and license.
- `catalogue`      the reference models shipped as data (`data/models/*.json`).
- `snapshot`       what a profile is built from: a local directory or file, a repo on any
                   Hub-compatible endpoint, a catalogue entry (the server adds its own store).
- `profile`        `AccessProfile` (pydantic) and `build_profile(snapshot, options)`.
- `render`, `charts`, `compare`   terminal/JSON/Markdown/HTML output, PNG/SVG charts, and the
                   paper's three comparison tables.

Units: every size is an integer number of bytes. Where a size is shown to people it always
says GB (10^9) or GiB (2^30).
"""
