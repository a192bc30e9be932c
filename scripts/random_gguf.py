"""Write random-weight GGUF files of the full profile's four model shapes, quantized as Q6_K.

    python scripts/random_gguf.py --shape all --scale full --out /tmp/gguf --dry-run
    python scripts/random_gguf.py --shape all --scale full --out /tmp/gguf
    python scripts/random_gguf.py --shape planner --scale tiny --out /tmp/tiny

Decode speed and memory depend on the shapes and byte sizes of the tensors, not on their values, so
a random-weight file of a model's real shape measures what the real file would (the text is noise).
Every weight matrix is Q6_K: random bytes in 210-byte blocks of 256 weights, whose last two bytes
(the block's fp16 scale `d`) are set so that a weight's standard deviation is 1/sqrt(fan-in) and
activations stay finite. Norms and rope factors are F32 ones; the MoE router is F32 random, as in
the published quants. The `tokenizer.*` keys come from a vocabulary-only GGUF of llama.cpp's
(--vocab-dir): the Llama 3 vocabulary for the llama-like shapes, Qwen2's for Qwen3 (the same
tokenizer). No Gemma or Mistral (Tekken) vocabulary is at hand, so Gemma-2 and Devstral use the
Llama 3 one, padded with unused tokens to their real vocabulary sizes (256000 and 131072) so that
the embedding and output matrices keep their real sizes.

`--scale tiny` keeps each architecture, its tensor list, head counts and key/value layout, and
shrinks depth and width (2 layers, n_embd 256, 8 experts) for CPU tests. The vocabulary is not
shrunk, so a tiny file is still 27-70 MB: 128k-152k embedding rows of 256 Q6_K weights.

Files are written one tensor at a time (tensors of the same size share their bytes, so memory stays
under ~1.5 GB), to `<name>.part` first and renamed when complete; a complete file of the planned
size is kept, so a rerun only writes what is missing.
"""

from __future__ import annotations

import argparse
import functools
import math
import shutil
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import gguf
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "models" / "manifest.toml"

Q6_K = gguf.GGMLQuantizationType.Q6_K
BLOCK_WEIGHTS, BLOCK_BYTES = gguf.GGML_QUANT_SIZES[Q6_K]  # 256 weights in 210 bytes
# A Q6_K weight is d * scale * (q - 32) with int8 `scale` and 6-bit `q`; for uniform random bytes
# the product scale * (q - 32) has this standard deviation (sqrt(E[scale^2] * E[(q-32)^2])).
Q6_K_WEIGHT_STD = math.sqrt((256**2 / 12 + 0.25) * (64**2 / 12 + 0.25))
POOL_BLOCKS = 1 << 16  # random blocks generated per file, then repeated (13.8 MB)
ALIGNMENT = gguf.GGUF_DEFAULT_ALIGNMENT

LLAMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    " + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}"
)


@dataclass(frozen=True)
class Vocabulary:
    file: str
    chat_template: str | None  # written when the vocabulary GGUF has none


VOCABULARIES = {
    "llama-bpe": Vocabulary("ggml-vocab-llama-bpe.gguf", LLAMA3_CHAT_TEMPLATE),
    "qwen2": Vocabulary("ggml-vocab-qwen2.gguf", None),  # ships a ChatML template
}


@dataclass(frozen=True)
class Shape:
    """One model's hyper-parameters (from its config.json)."""

    agent: str
    model: str
    arch: str
    vocabulary: str
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_ff: int
    n_vocab: int | None  # None: the vocabulary GGUF's own size
    n_ctx_train: int
    rope_theta: float
    rms_eps: float
    tied_output: bool = False
    rope_freqs: bool = False  # Llama 3.1 rope scaling: a rope_freqs.weight tensor
    n_expert: int = 0
    n_expert_used: int = 0
    n_ff_exp: int = 0


SHAPES = {
    shape.agent: shape
    for shape in (
        Shape(
            agent="preprocessor",
            model="Gemma-2-2B-it",
            arch="gemma2",
            vocabulary="llama-bpe",
            n_layer=26,
            n_embd=2304,
            n_head=8,
            n_head_kv=4,
            head_dim=256,
            n_ff=9216,
            n_vocab=256000,
            n_ctx_train=8192,
            rope_theta=10000.0,
            rms_eps=1e-6,
            tied_output=True,
        ),
        Shape(
            agent="planner",
            model="Llama-3.1-Nemotron-Nano-8B-v1",
            arch="llama",
            vocabulary="llama-bpe",
            n_layer=32,
            n_embd=4096,
            n_head=32,
            n_head_kv=8,
            head_dim=128,
            n_ff=14336,
            n_vocab=128256,
            n_ctx_train=131072,
            rope_theta=500000.0,
            rms_eps=1e-5,
            rope_freqs=True,
        ),
        Shape(
            agent="coder",
            model="Devstral-Small-2507 (24B)",
            arch="llama",
            vocabulary="llama-bpe",
            n_layer=40,
            n_embd=5120,
            n_head=32,
            n_head_kv=8,
            head_dim=128,
            n_ff=32768,
            n_vocab=131072,
            n_ctx_train=131072,
            rope_theta=1e9,
            rms_eps=1e-5,
        ),
        Shape(
            agent="reviewer",
            model="Qwen3-Coder-30B-A3B-Instruct",
            arch="qwen3moe",
            vocabulary="qwen2",
            n_layer=48,
            n_embd=2048,
            n_head=32,
            n_head_kv=4,
            head_dim=128,
            n_ff=5472,
            n_vocab=151936,
            n_ctx_train=262144,
            rope_theta=1e7,
            rms_eps=1e-6,
            n_expert=128,
            n_expert_used=8,
            n_ff_exp=768,
        ),
    )
}


def tiny(shape: Shape) -> Shape:
    """The same architecture, tensor list and head counts, 2 layers deep and 256 wide."""
    moe = {"n_expert": 8, "n_expert_used": 2, "n_ff_exp": 256} if shape.n_expert else {}
    return replace(
        shape, n_layer=2, n_embd=256, head_dim=32, n_ff=512, n_vocab=None, n_ctx_train=4096, **moe
    )


def shape_for(agent: str, scale: str) -> Shape:
    return tiny(SHAPES[agent]) if scale == "tiny" else SHAPES[agent]


def file_name(agent: str, scale: str) -> str:
    shape = SHAPES[agent]
    return f"{agent}-{shape.arch}-{scale}-random-Q6_K.gguf"


# --- tensors -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorSpec:
    name: str
    ne: tuple[int, ...]  # ggml order: ne[0] is the row length, the fan-in of a weight matrix
    fill: str  # "q6_k" random weights, "ones" or "normal" (F32)

    @property
    def nbytes(self) -> int:
        n = math.prod(self.ne)
        return n // BLOCK_WEIGHTS * BLOCK_BYTES if self.fill == "q6_k" else n * 4

    @property
    def array_shape(self) -> tuple[int, ...]:
        """The numpy shape GGUFWriter expects: reversed, in bytes along rows for Q6_K."""
        outer = tuple(reversed(self.ne[1:]))
        if self.fill == "q6_k":
            return (*outer, self.ne[0] // BLOCK_WEIGHTS * BLOCK_BYTES)
        return (*outer, self.ne[0])


def _weight(name: str, *ne: int) -> TensorSpec:
    if ne[0] % BLOCK_WEIGHTS:
        raise ValueError(f"{name}: rows of {ne[0]} weights do not fill 256-weight Q6_K blocks")
    return TensorSpec(name, ne, "q6_k")


def _norm(name: str, width: int) -> TensorSpec:
    return TensorSpec(name, (width,), "ones")


def _attention(s: Shape, i: int) -> list[TensorSpec]:
    q, kv = s.n_head * s.head_dim, s.n_head_kv * s.head_dim
    return [
        _norm(f"blk.{i}.attn_norm.weight", s.n_embd),
        _weight(f"blk.{i}.attn_q.weight", s.n_embd, q),
        _weight(f"blk.{i}.attn_k.weight", s.n_embd, kv),
        _weight(f"blk.{i}.attn_v.weight", s.n_embd, kv),
        _weight(f"blk.{i}.attn_output.weight", q, s.n_embd),
    ]


def _dense_ffn(s: Shape, i: int) -> list[TensorSpec]:
    return [
        _norm(f"blk.{i}.ffn_norm.weight", s.n_embd),
        _weight(f"blk.{i}.ffn_gate.weight", s.n_embd, s.n_ff),
        _weight(f"blk.{i}.ffn_up.weight", s.n_embd, s.n_ff),
        _weight(f"blk.{i}.ffn_down.weight", s.n_ff, s.n_embd),
    ]


def _llama_layer(s: Shape, i: int) -> list[TensorSpec]:
    return _attention(s, i) + _dense_ffn(s, i)


def _gemma2_layer(s: Shape, i: int) -> list[TensorSpec]:
    return [
        *_attention(s, i),
        _norm(f"blk.{i}.post_attention_norm.weight", s.n_embd),
        *_dense_ffn(s, i),
        _norm(f"blk.{i}.post_ffw_norm.weight", s.n_embd),
    ]


def _qwen3moe_layer(s: Shape, i: int) -> list[TensorSpec]:
    return [
        *_attention(s, i),
        _norm(f"blk.{i}.attn_q_norm.weight", s.head_dim),
        _norm(f"blk.{i}.attn_k_norm.weight", s.head_dim),
        _norm(f"blk.{i}.ffn_norm.weight", s.n_embd),
        TensorSpec(f"blk.{i}.ffn_gate_inp.weight", (s.n_embd, s.n_expert), "normal"),
        _weight(f"blk.{i}.ffn_gate_exps.weight", s.n_embd, s.n_ff_exp, s.n_expert),
        _weight(f"blk.{i}.ffn_up_exps.weight", s.n_embd, s.n_ff_exp, s.n_expert),
        _weight(f"blk.{i}.ffn_down_exps.weight", s.n_ff_exp, s.n_embd, s.n_expert),
    ]


def _gemma2_keys(writer: gguf.GGUFWriter, s: Shape) -> None:
    writer.add_sliding_window(4096)
    writer.add_attn_logit_softcapping(50.0)
    writer.add_final_logit_softcapping(30.0)


def _llama_keys(writer: gguf.GGUFWriter, s: Shape) -> None:
    writer.add_rope_dimension_count(s.head_dim)


def _qwen3moe_keys(writer: gguf.GGUFWriter, s: Shape) -> None:
    writer.add_expert_count(s.n_expert)
    writer.add_expert_used_count(s.n_expert_used)
    writer.add_expert_feed_forward_length(s.n_ff_exp)


@dataclass(frozen=True)
class Architecture:
    layer: Callable[[Shape, int], list[TensorSpec]]
    keys: Callable[[gguf.GGUFWriter, Shape], None]


ARCHITECTURES = {
    "llama": Architecture(_llama_layer, _llama_keys),
    "gemma2": Architecture(_gemma2_layer, _gemma2_keys),
    "qwen3moe": Architecture(_qwen3moe_layer, _qwen3moe_keys),
}


def tensor_specs(s: Shape, n_vocab: int) -> list[TensorSpec]:
    """Every tensor of the model, in the order llama.cpp's converter writes them."""
    specs = [_weight("token_embd.weight", s.n_embd, n_vocab)]
    if s.rope_freqs:
        specs.append(_norm("rope_freqs.weight", s.head_dim // 2))
    for i in range(s.n_layer):
        specs += ARCHITECTURES[s.arch].layer(s, i)
    specs.append(_norm("output_norm.weight", s.n_embd))
    if not s.tied_output:
        specs.append(_weight("output.weight", s.n_embd, n_vocab))
    return specs


# --- metadata ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenizerKey:
    key: str
    value: object
    vtype: gguf.GGUFValueType
    sub_type: gguf.GGUFValueType | None


@functools.cache
def read_tokenizer(path: Path) -> list[TokenizerKey]:
    """The `tokenizer.*` keys of a vocabulary GGUF, with their GGUF types (read once: parsing
    several hundred thousand strings takes seconds)."""
    reader = gguf.GGUFReader(path)
    keys = []
    for key, field in reader.fields.items():
        if key.startswith("tokenizer."):
            sub_type = field.types[1] if len(field.types) > 1 else None
            keys.append(TokenizerKey(key, field.contents(), field.types[0], sub_type))
    return keys


def padded(tokenizer: list[TokenizerKey], n_vocab: int | None) -> tuple[list[TokenizerKey], int]:
    """The tokenizer with unused tokens appended up to `n_vocab`, and the vocabulary size."""
    by_key = {k.key: k for k in tokenizer}
    tokens = by_key["tokenizer.ggml.tokens"].value
    assert isinstance(tokens, list)
    have = len(tokens)
    if n_vocab is None or n_vocab <= have:
        return tokenizer, have
    extra = range(have, n_vocab)
    appended = {
        "tokenizer.ggml.tokens": [f"[PAD{i}]" for i in extra],
        "tokenizer.ggml.token_type": [int(gguf.TokenType.UNUSED)] * len(extra),
        "tokenizer.ggml.scores": [0.0] * len(extra),
    }
    out = []
    for k in tokenizer:
        if k.key in appended:
            assert isinstance(k.value, list)
            k = replace(k, value=k.value + appended[k.key])
        out.append(k)
    return out, n_vocab


def new_writer(
    path: Path, s: Shape, tokenizer: list[TokenizerKey], chat_template: str | None
) -> tuple[gguf.GGUFWriter, list[TensorSpec]]:
    """A GGUFWriter holding every key and tensor descriptor of the model (nothing written yet),
    and the tensors in the order their data must be written."""
    tokenizer, n_vocab = padded(tokenizer, s.n_vocab)
    specs = tensor_specs(s, n_vocab)
    writer = gguf.GGUFWriter(path, s.arch)
    writer.add_name(f"{s.model} (random weights)")
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q6_K)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_context_length(s.n_ctx_train)
    writer.add_embedding_length(s.n_embd)
    writer.add_block_count(s.n_layer)
    writer.add_feed_forward_length(s.n_ff)
    writer.add_head_count(s.n_head)
    writer.add_head_count_kv(s.n_head_kv)
    writer.add_key_length(s.head_dim)
    writer.add_value_length(s.head_dim)
    writer.add_layer_norm_rms_eps(s.rms_eps)
    writer.add_rope_freq_base(s.rope_theta)
    writer.add_vocab_size(n_vocab)
    ARCHITECTURES[s.arch].keys(writer, s)
    for k in tokenizer:
        writer.add_key_value(k.key, k.value, k.vtype, k.sub_type)
    if chat_template and not any(k.key == "tokenizer.chat_template" for k in tokenizer):
        writer.add_chat_template(chat_template)
    for spec in specs:
        dtype = np.uint8 if spec.fill == "q6_k" else np.float32
        raw = Q6_K if spec.fill == "q6_k" else None
        writer.add_tensor_info(spec.name, spec.array_shape, dtype, spec.nbytes, raw_dtype=raw)
    return writer, specs


def _aligned(n: int) -> int:
    return (n + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


# --- the model files -----------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    shape: Shape
    path: Path
    metadata_bytes: int
    tensor_bytes: int

    @property
    def file_bytes(self) -> int:
        return self.metadata_bytes + self.tensor_bytes


class ModelFile:
    """One model to write: its shape, its tokenizer and where it goes."""

    def __init__(self, agent: str, scale: str, vocab_dir: Path, out: Path) -> None:
        self.shape = shape_for(agent, scale)
        self.path = out / file_name(agent, scale)
        vocabulary = VOCABULARIES[self.shape.vocabulary]
        self.tokenizer = read_tokenizer(vocab_dir / vocabulary.file)
        self.chat_template = vocabulary.chat_template

    def plan(self) -> Plan:
        """The exact size the file will have, from its metadata written to a scratch file."""
        with tempfile.TemporaryDirectory() as scratch:
            writer, specs = self._writer(Path(scratch) / "metadata.gguf")
            self._write_metadata(writer)
            assert writer.fout is not None
            metadata = writer.fout[0].tell()
            writer.close()
        tensors = sum(_aligned(spec.nbytes) for spec in specs)
        return Plan(self.shape, self.path, _aligned(metadata), tensors)

    def write(self, seed: int) -> None:
        """Write the file tensor by tensor to `<name>.part`, then rename it."""
        part = self.path.with_name(self.path.name + ".part")
        writer, specs = self._writer(part)
        self._write_metadata(writer)
        data = TensorData(np.random.default_rng(seed))
        for spec in specs:
            writer.write_tensor_data(data.array(spec))
        writer.close()
        part.rename(self.path)

    def _writer(self, path: Path) -> tuple[gguf.GGUFWriter, list[TensorSpec]]:
        return new_writer(path, self.shape, self.tokenizer, self.chat_template)

    @staticmethod
    def _write_metadata(writer: gguf.GGUFWriter) -> None:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()


class TensorData:
    """Tensor contents. Q6_K tensors repeat one pool of random blocks, and tensors of the same
    size and fan-in share one array: the values do not change the speed, and this keeps writing
    at disk speed."""

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._pool = rng.integers(0, 256, size=(POOL_BLOCKS, BLOCK_BYTES), dtype=np.uint8)
        self._cache: dict[tuple[int, int], np.ndarray] = {}

    def array(self, spec: TensorSpec) -> np.ndarray:
        if spec.fill == "ones":
            return np.ones(spec.array_shape, dtype=np.float32)
        if spec.fill == "normal":
            std = 1 / math.sqrt(spec.ne[0])
            return self._rng.normal(0, std, size=spec.array_shape).astype(np.float32)
        n_blocks = math.prod(spec.ne) // BLOCK_WEIGHTS
        key = (n_blocks, spec.ne[0])
        if key not in self._cache:
            blocks = np.resize(self._pool, (n_blocks, BLOCK_BYTES))
            scale = np.float16(1 / (Q6_K_WEIGHT_STD * math.sqrt(spec.ne[0])))
            blocks[:, BLOCK_BYTES - 2 :] = np.frombuffer(scale.tobytes(), dtype=np.uint8)
            self._cache[key] = blocks
        return self._cache[key].reshape(spec.array_shape)


# --- command line --------------------------------------------------------------------------


def published_bytes(agent: str) -> int | None:
    """The real Q6_K file's size, from models/manifest.toml."""
    with MANIFEST.open("rb") as handle:
        models = tomllib.load(handle)["models"]
    return models.get(agent, {}).get("size_bytes")


def describe(plan: Plan, scale: str) -> str:
    s = plan.shape
    line = (
        f"{s.agent:<12} {s.model:<30} {s.arch:<8} {s.n_layer:>2} layers"
        f"  file {plan.file_bytes / 1e9:7.3f} GB ({plan.file_bytes} bytes)"
    )
    real = published_bytes(s.agent) if scale == "full" else None
    if real:
        line += f"  published Q6_K {real / 1e9:.2f} GB, ratio {plan.file_bytes / real:.3f}"
    return line


def selected(shape: str) -> Iterator[str]:
    yield from SHAPES if shape == "all" else [shape]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", choices=[*SHAPES, "all"], default="all")
    parser.add_argument("--scale", choices=["full", "tiny"], default="full")
    parser.add_argument("--out", type=Path, required=True, help="folder for the GGUF files")
    parser.add_argument(
        "--vocab-dir",
        type=Path,
        default=ROOT / ".gpu",
        help="folder with ggml-vocab-llama-bpe.gguf and ggml-vocab-qwen2.gguf (default: .gpu)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dry-run", action="store_true", help="print the sizes, write nothing")
    args = parser.parse_args(argv)

    total = 0
    for agent in selected(args.shape):
        model = ModelFile(agent, args.scale, args.vocab_dir, args.out)
        plan = model.plan()
        total += plan.file_bytes
        print(describe(plan, args.scale), flush=True)
        if args.dry_run:
            continue
        if plan.path.is_file() and plan.path.stat().st_size == plan.file_bytes:
            print(f"  {plan.path} is already complete: kept", flush=True)
            continue
        args.out.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(args.out).free
        if free < plan.file_bytes:
            print(f"  not enough disk: {free / 1e9:.1f} GB free in {args.out}", file=sys.stderr)
            return 1
        started = time.monotonic()
        model.write(args.seed)
        elapsed = time.monotonic() - started
        print(
            f"  wrote {plan.path} in {elapsed:.1f} s ({plan.file_bytes / elapsed / 1e9:.2f} GB/s),"
            f" {shutil.disk_usage(args.out).free / 1e9:.1f} GB left on the disk",
            flush=True,
        )
    print(f"total {total / 1e9:.3f} GB for {args.shape} ({args.scale})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
