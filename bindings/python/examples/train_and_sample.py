"""Train a small diffusion language model, save it, load it and write text.

    python3 train_and_sample.py                          # a few built-in lines
    python3 train_and_sample.py --corpus data/kjv.txt.gz --steps 2000

The library is found through TEXTDIFF_LIBRARY, a copy in the package, or
the system (docs/python.md).
"""

import argparse
import os
import tempfile
import time

import textdiff as td

LINES = """\
In the beginning God created the heaven and the earth.
And the earth was without form, and void; and darkness was upon the face of the deep.
And the Spirit of God moved upon the face of the waters.
And God said, Let there be light: and there was light.
And God saw the light, that it was good: and God divided the light from the darkness.
And God called the light Day, and the darkness he called Night.
And the evening and the morning were the first day.
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", help="a text file, plain or gzip (default: built-in lines)")
    ap.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--save", help="checkpoint path (default: a temporary file)")
    args = ap.parse_args()
    T, B = args.seq_len, args.batch

    print("libtextdiff %s (%s)" % (td.version(), td.library_path))
    tok = td.Tokenizer.byte()
    if args.corpus:
        corpus = td.Corpus.load(args.corpus, tok)
    else:
        corpus = td.Corpus.from_text(LINES * 50, tok)
    print("corpus: %d training tokens" % corpus.num_tokens(td.Split.TRAIN))

    schedule = td.Schedule.diffusion()  # td.Schedule.mlm() would train BERT's MLM
    with td.Model(tokenizer=tok, d_model=64, n_layers=2, n_heads=4, d_ff=256,
                  max_seq_len=T) as model:
        print("model: %d parameters" % model.num_params)
        with td.Trainer(model, schedule, batch_size=B, seq_len=T, n_threads=args.threads,
                        total_steps=args.steps, warmup_steps=max(args.steps // 10, 1),
                        lr=3e-3) as trainer:
            start = time.time()
            for step in range(args.steps):
                stats = trainer.step(corpus.batch(B, T, index=step))
                if (step + 1) % max(args.steps // 5, 1) == 0:
                    print("step %5d  loss %.3f nats/token  lr %.2e" % (
                        stats.step, stats.loss, stats.lr))
            print("trained in %.1f s" % (time.time() - start))

        with tempfile.TemporaryDirectory() as tmp:
            path = args.save or os.path.join(tmp, "model.tdm")
            model.save(path)
            loaded = td.Model.load(path)
        print("saved and loaded %s" % (args.save or "a checkpoint"))

    # The checkpoint carries its tokenizer.
    tok2 = loaded.get_tokenizer()
    prompt = tok2.encode("And God said")
    canvas = prompt + [tok2.mask_id] * (T - len(prompt))
    with td.Sampler(loaded, schedule, steps=32, temperature=0.8, seed=7) as sampler:
        stats = sampler.generate(canvas)
    print("sample: %s" % tok2.decode(canvas).replace("\n", " / "))
    print("(%d steps, %d model calls)" % (stats.steps, stats.model_calls))


if __name__ == "__main__":
    main()
