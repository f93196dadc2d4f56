#!/bin/sh
# Command-line behaviour of the example trainers: help, error paths (status 2 and one clear line),
# missing data files, and a tiny smoke run of each that ends with the machine-readable summary.
# Usage: check-cli.sh PATH/mominit-rnn PATH/mominit-ae
set -u
rnn=$1 ae=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0 count=0
export OPENBLAS_NUM_THREADS=1

expect() { # expect STATUS PATTERN -- command...
    want=$1 pat=$2
    shift 3
    count=$((count + 1))
    "$@" > "$tmp/out" 2> "$tmp/err"
    got=$?
    if [ "$got" -ne "$want" ] || ! grep -q -- "$pat" "$tmp/out" "$tmp/err"; then
        echo "not ok $count - $* (status $got, want $want; pattern '$pat')"
        sed 's/^/#   /' "$tmp/err" | head -5
        fails=$((fails + 1))
    else
        echo "ok $count - $*"
    fi
    if [ "$want" -eq 2 ] && [ "$(wc -l < "$tmp/err")" -ne 1 ]; then
        echo "not ok $count - a usage error must be exactly one line on stderr"
        fails=$((fails + 1))
    fi
}

for flag in --task --T --hidden --optim --mu0 --mu-warmup --lr --steps --batch --seed \
            --input-scale --eval-every --eval-size --center --log --plot --threads --checkpoint \
            --checkpoint-every --resume --hf-lambda --hf-fixed-cg --hf-struct --init-seed \
            --loss-steps --mpi --trace --learn-h0 --clip --target --bias-only; do
    expect 0 "$flag" -- "$rnn" --help
done
for flag in --data --arch --optim --mu-max --lr --steps --batch --final-phase --si-scale --seed \
            --recon --log --plot --threads --checkpoint --checkpoint-every --resume --hf-lambda \
            --weight-decay --mhf-anneal; do
    expect 0 "$flag" -- "$ae" --help
done
expect 2 "unknown option" -- "$rnn" --bogus
expect 2 "unknown task" -- "$rnn" --task nosuch
expect 2 "needs a number" -- "$rnn" --lr abc
expect 2 "must be in" -- "$rnn" --mu0 1.5
expect 2 "needs a value" -- "$rnn" --steps
expect 2 "too small" -- "$rnn" --task addition --T 3
expect 2 "VALUE:STEPS" -- "$rnn" --mu-warmup 0.9
expect 2 "applies to the memorization tasks" -- "$rnn" --task addition --loss-steps recall
expect 2 "unknown --loss-steps" -- "$rnn" --task mem20 --loss-steps some
expect 2 "integer, got 'x'" -- "$rnn" --init-seed x
expect 2 "unknown optimizer" -- "$ae" --optim adam
expect 2 "curves or idx" -- "$ae" --data mnist
expect 2 "arch" -- "$ae" --arch 784-x-6
expect 2 "pixels" -- "$ae" --arch 100-10 --train-size 10
expect 2 "STEPS:MU" -- "$ae" --final-phase 1000
expect 1 "$tmp/none.gz: cannot open" -- "$ae" --data "idx:$tmp/none.gz"
printf 'not an idx file at all' > "$tmp/bad.idx"
expect 1 "bad.idx: not an IDX image file" -- "$ae" --data "idx:$tmp/bad.idx"

expect 0 "^final steps=30 " -- "$rnn" --task addition --T 20 --steps 30 --batch 10 \
    --eval-every 10 --eval-size 50 --log "$tmp/rnn.csv"
count=$((count + 1))
if [ "$(wc -l < "$tmp/rnn.csv")" -eq 4 ]; then echo "ok $count - rnn log has 3 rows"
else echo "not ok $count - rnn log rows"; fails=$((fails + 1)); fi
expect 0 "^final steps=20 " -- "$ae" --arch 784-20-5 --train-size 300 --steps 20 --batch 50 \
    --eval-every 10 --eval-size 100 --recon "$tmp/r.png"
count=$((count + 1))
if head -c 8 "$tmp/r.png" | od -An -c | grep -q 'P   N   G'; then echo "ok $count - recon is a PNG"
else echo "not ok $count - recon PNG"; fails=$((fails + 1)); fi

# Resuming from a checkpoint continues the same run: the same summary as an uninterrupted run.
same_summary() { # same_summary LABEL FILE1 FILE2: equal final lines except the seconds
    count=$((count + 1))
    a=$(tail -n 1 "$2" | sed 's/ seconds=.*//') b=$(tail -n 1 "$3" | sed 's/ seconds=.*//')
    if [ -n "$a" ] && [ "$a" = "$b" ]; then echo "ok $count - $1"
    else echo "not ok $count - $1: '$a' vs '$b'"; fails=$((fails + 1)); fi
}
# --trace: a row for the initial network (spectral radius 1.1 by the paper's initialization) and
# one per evaluation; tracing leaves the training itself unchanged; resuming appends.
r="--task addition --T 20 --batch 10 --eval-every 10 --eval-size 50"
"$rnn" $r --steps 30 > "$tmp/untraced" 2>/dev/null
expect 0 "^final steps=30 " -- "$rnn" $r --steps 30 --trace "$tmp/dyn.csv"
cp "$tmp/out" "$tmp/traced"
count=$((count + 1))
if [ "$(sed -n 1p "$tmp/dyn.csv")" = "step,rho_hh,norm_w_vh,norm_w_hh,norm_b_h,norm_w_ho,grad_norm" ] &&
   [ "$(wc -l < "$tmp/dyn.csv")" -eq 5 ] && grep -q '^0,1.1,' "$tmp/dyn.csv" &&
   grep -q '^30,' "$tmp/dyn.csv"; then echo "ok $count - trace: header, steps 0 to 30, rho 1.1 at 0"
else echo "not ok $count - trace rows"; sed 's/^/#   /' "$tmp/dyn.csv"; fails=$((fails + 1)); fi
same_summary "tracing leaves the run unchanged" "$tmp/untraced" "$tmp/traced"
"$rnn" $r --steps 20 --checkpoint "$tmp/tr.ckpt" --trace "$tmp/dyn2.csv" > /dev/null 2>&1
"$rnn" $r --steps 30 --resume "$tmp/tr.ckpt" --trace "$tmp/dyn2.csv" > /dev/null 2>&1
count=$((count + 1))
if [ "$(cut -d, -f1 "$tmp/dyn2.csv" | tr '\n' ' ')" = "step 0 10 20 30 " ]; then
    echo "ok $count - a resumed trace continues the file"
else echo "not ok $count - resumed trace: $(cut -d, -f1 "$tmp/dyn2.csv" | tr '\n' ' ')"
    fails=$((fails + 1)); fi
expect 1 "cannot write the trace" -- "$rnn" $r --steps 10 --trace "$tmp/no/such/dir.csv"

for opt in nag hf; do
    r="--task addition --T 20 --batch 20 --eval-every 10 --eval-size 100 --optim $opt --hf-max-cg 10"
    "$rnn" $r --steps 40 > "$tmp/straight" 2>/dev/null
    "$rnn" $r --steps 20 --checkpoint "$tmp/half.ckpt" > /dev/null 2>&1
    "$rnn" $r --steps 40 --resume "$tmp/half.ckpt" > "$tmp/resumed" 2>/dev/null
    same_summary "mominit-rnn --optim $opt: resumed run equals the straight run" "$tmp/straight" "$tmp/resumed"
done
for opt in nag mhf; do
    a="--arch 784-30-6 --train-size 500 --batch 50 --eval-every 10 --eval-size 200 --optim $opt --hf-fixed-cg 5"
    "$ae" $a --steps 40 > "$tmp/straight" 2>/dev/null
    "$ae" $a --steps 20 --checkpoint "$tmp/half.ckpt" > /dev/null 2>&1
    "$ae" $a --steps 40 --resume "$tmp/half.ckpt" > "$tmp/resumed" 2>/dev/null
    same_summary "mominit-ae --optim $opt: resumed run equals the straight run" "$tmp/straight" "$tmp/resumed"
done
"$rnn" --task addition --T 20 --steps 10 --batch 10 --eval-every 10 --eval-size 10 \
    --checkpoint "$tmp/rnn-ckpt-for-mismatch" > /dev/null 2>&1
expect 1 "unit layer 1 has 100 units in the checkpoint, 50" -- "$rnn" --task addition --T 20 \
    --steps 30 --hidden 50 --resume "$tmp/rnn-ckpt-for-mismatch"
expect 2 "multiple of --eval-every" -- "$rnn" --eval-every 100 --checkpoint-every 150
printf 'garbage' > "$tmp/garbage.ckpt"
expect 1 "cannot resume from $tmp/garbage.ckpt" -- "$ae" --arch 784-30-6 --train-size 100 \
    --steps 5 --resume "$tmp/garbage.ckpt"

# A run killed after its last checkpoint has logged updates it will run again: resuming drops
# those rows, so the log holds each evaluation once.
r="--task addition --T 20 --batch 10 --eval-every 5 --eval-size 20"
"$rnn" $r --steps 10 --checkpoint "$tmp/k.ckpt" --log "$tmp/k.csv" > /dev/null 2>&1
echo "15,0.9,0.0003,0.5,0.5,1.0" >> "$tmp/k.csv" # as if the killed run had gone on to 15
"$rnn" $r --steps 20 --resume "$tmp/k.ckpt" --checkpoint "$tmp/k.ckpt" --log "$tmp/k.csv" \
    > /dev/null 2>&1
count=$((count + 1))
if [ "$(cut -d, -f1 "$tmp/k.csv" | tr '\n' ' ')" = "step 5 10 15 20 " ] &&
   ! grep -q '^15,0.9,0.0003,0.5,0.5,1.0$' "$tmp/k.csv"; then
    echo "ok $count - a resumed log drops the rows past its checkpoint"
else echo "not ok $count - resumed log: $(cut -d, -f1 "$tmp/k.csv" | tr '\n' ' ')"
    fails=$((fails + 1)); fi
expect 2 "--center applies to the addition and multiplication" -- "$rnn" --task xor --center
# The initial network depends on the seeds alone, not on the evaluation size (its output biases
# come from 1000 sequences of their own).
"$rnn" $r --steps 20 --eval-every 20 --eval-size 50 > "$tmp/e50" 2>/dev/null
"$rnn" $r --steps 20 --eval-every 20 --eval-size 1000 > "$tmp/e1000" 2>/dev/null
count=$((count + 1))
if [ "$(sed 's/.*train_loss=\([^ ]*\).*/\1/' "$tmp/e50")" = \
     "$(sed 's/.*train_loss=\([^ ]*\).*/\1/' "$tmp/e1000")" ] && grep -q train_loss "$tmp/e50"; then
    echo "ok $count - the training does not depend on --eval-size"
else echo "not ok $count - --eval-size 50 vs 1000: $(cat "$tmp/e50") / $(cat "$tmp/e1000")"
    fails=$((fails + 1)); fi
# The seconds column is the run's wall time: a resumed run's rows go on from the log's last row.
"$rnn" $r --steps 10 --checkpoint "$tmp/s.ckpt" --log "$tmp/s.csv" > /dev/null 2>&1
sed 's/,[0-9.]*$/,500.25/' "$tmp/s.csv" > "$tmp/s2.csv" && mv "$tmp/s2.csv" "$tmp/s.csv"
"$rnn" $r --steps 15 --resume "$tmp/s.ckpt" --log "$tmp/s.csv" > "$tmp/s.out" 2>/dev/null
count=$((count + 1))
if awk -F, '$1 == 15 && $6 >= 500.25 && $6 < 560 { ok = 1 } END { exit !ok }' "$tmp/s.csv" &&
   grep -q 'seconds=50[0-9]' "$tmp/s.out"; then
    echo "ok $count - a resumed log's seconds go on from its last row"
else echo "not ok $count - resumed seconds: $(tail -1 "$tmp/s.csv") / $(tail -1 "$tmp/s.out")"
    fails=$((fails + 1)); fi
expect 1 "already holds 20 updates" -- "$rnn" $r --steps 20 --resume "$tmp/k.ckpt"
expect 2 "--plot needs --log" -- "$rnn" $r --steps 5 --plot "$tmp/p.png"
expect 1 "cannot write checkpoints into $tmp/no/such" -- "$rnn" $r --steps 5 \
    --checkpoint "$tmp/no/such/k.ckpt"
"$rnn" $r --steps 0 --checkpoint "$tmp/s0.ckpt" > /dev/null 2>&1
count=$((count + 1))
if [ -s "$tmp/s0.ckpt" ]; then echo "ok $count - --steps 0 still writes its checkpoint"
else echo "not ok $count - --steps 0 wrote no checkpoint"; fails=$((fails + 1)); fi
expect 2 "needs a non-negative integer" -- "$rnn" --seed " 1"
expect 2 "needs an integer" -- "$rnn" --steps 0x10
expect 0 "seed 10$" -- "$rnn" $r --steps 0 --seed 010
expect 2 "must look like" -- "$ae" --arch 784-400- --data idx:"$tmp/none"
expect 2 "goes with --data idx" -- "$ae" --data curves --test-data idx:"$tmp/none"
expect 2 "applies to the addition task" -- "$rnn" --task mem5 --target sum

echo "1..$count"
[ "$fails" -eq 0 ]
