#!/usr/bin/env python3
"""Tokenizer fixtures for tests/test_model.c, made by the real tokenizer libraries.

The HF hub is not reachable from the build machines, so instead of downloading
GPT-2's and Llama's vocabularies we train small ones with the same algorithms:
  - gpt2/vocab.json + gpt2/merges.txt: a byte-level BPE (HF `tokenizers`, GPT-2's
    pre-tokenizer regex and byte-to-unicode map), in GPT-2's file format;
  - llama2c/tokenizer.bin: a sentencepiece BPE model with byte fallback, exported
    the way llama2.c's tokenizer.py does (max_token_length, then score, len, bytes
    per token; '\u2581' replaced by ' ').
cases.json holds strings and the ids the real libraries produce for them.
Run: python3 tools/gen_tokenizer_fixtures.py  (needs tokenizers, sentencepiece from PyPI)
"""
import glob
import json
import os
import struct
import tempfile

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "tok")

CASES = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "  leading spaces and trailing   ",
    "numbers 12345 and 3.14159, don't stop!",
    "GNU General Public License; Version 3, 29 June 2007",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9",
    "tabs\tand\nnewlines\n\nend",
    "a",
]


def corpus():
    text = []
    for f in sorted(glob.glob("/usr/share/common-licenses/*")):
        if os.path.isfile(f):
            with open(f, encoding="utf-8", errors="ignore") as fh:
                text.append(fh.read())
    return "\n".join(text)


def gpt2(text):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, min_frequency=2, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|endoftext|>"])
    tok.train_from_iterator([text], trainer)
    d = os.path.join(OUT, "gpt2")
    os.makedirs(d, exist_ok=True)
    tok.model.save(d)  # vocab.json + merges.txt in GPT-2's format
    return {s: tok.encode(s).ids for s in CASES}


def llama2c(text):
    import sentencepiece as spm
    d = os.path.join(OUT, "llama2c")
    os.makedirs(d, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        inp = os.path.join(tmp, "corpus.txt")
        with open(inp, "w") as f:
            f.write(text)
        prefix = os.path.join(tmp, "tok")
        spm.SentencePieceTrainer.train(input=inp, model_prefix=prefix, model_type="bpe", vocab_size=512, byte_fallback=True,
                                       character_coverage=1.0, split_digits=True, allow_whitespace_only_pieces=True,
                                       normalization_rule_name="identity", add_dummy_prefix=True, max_sentence_length=100000,
                                       minloglevel=2)
        sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
    tokens, scores = [], []
    for i in range(sp.vocab_size()):
        t = sp.id_to_piece(i)
        s = sp.get_score(i)
        if i == sp.bos_id():
            t = "\n<s>\n"
        elif i == sp.eos_id():
            t = "\n</s>\n"
        t = t.replace("\u2581", " ")
        tokens.append(t.encode("utf-8"))
        scores.append(s)
    with open(os.path.join(d, "tokenizer.bin"), "wb") as f:
        f.write(struct.pack("I", max(len(t) for t in tokens)))
        for b, s in zip(tokens, scores):
            f.write(struct.pack("fI", s, len(b)))
            f.write(b)
    return {s: (sp.encode(s), runc_encode(tokens, scores, s)) for s in CASES}, sp.vocab_size()


def runc_encode(tokens, scores, text):
    """llama2.c run.c's encode(): dummy-prefix space, code points with byte fallback
    (id = byte + 3), then repeatedly merge the adjacent pair whose concatenation has
    the highest score. It equals sentencepiece's BPE except on some whitespace runs."""
    lookup = {}
    for i, t in enumerate(tokens):
        lookup.setdefault(t, i)
    ids = []
    if text:
        ids.append(lookup[b" "])
    for ch in text:
        b = ch.encode("utf-8")
        if b in lookup:
            ids.append(lookup[b])
        else:
            ids.extend(x + 3 for x in b)
    while True:
        best, bi, bid = -1e10, -1, -1
        for k in range(len(ids) - 1):
            m = lookup.get(tokens[ids[k]] + tokens[ids[k + 1]])
            if m is not None and scores[m] > best:
                best, bi, bid = scores[m], k, m
        if bi < 0:
            break
        ids[bi:bi + 2] = [bid]
    return ids


if __name__ == "__main__":
    text = corpus()
    g = gpt2(text)
    l, n = llama2c(text)
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump({"gpt2": [{"text": s, "ids": g[s]} for s in CASES],
                   "llama2c": {"vocab_size": n, "cases": [{"text": s, "ids": l[s][0], "runc_ids": l[s][1]} for s in CASES]}},
                  f, indent=1, ensure_ascii=True)
    print("llama2.c run.c differs from sentencepiece on:", [s for s in CASES if l[s][0] != l[s][1]])
    for root, _, files in os.walk(OUT):
        for fn in files:
            print(os.path.join(root, fn), os.path.getsize(os.path.join(root, fn)))
