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

check() { # check LABEL COMMAND...: one test that passes when the command succeeds
    label=$1
    shift
    count=$((count + 1))
    if "$@"; then echo "ok $count - $label"; else echo "not ok $count - $label"; fails=$((fails + 1)); fi
}

for flag in --task --T --hidden --optim --mu0 --mu-warmup --lr --steps --batch --seed \
            --input-scale --eval-every --eval-size --center --no-center --log --plot --threads --checkpoint \
            --checkpoint-every --resume --hf-lambda --hf-fixed-cg --hf-struct --init-seed \
            --loss-steps --mpi --trace --learn-h0 --clip --target --bias-only --lookahead; do
    expect 0 "$flag" -- "$rnn" --help
done
for flag in --data --arch --optim --mu-max --lr --steps --batch --final-phase --si-scale --seed \
            --recon --log --plot --threads --checkpoint --checkpoint-every --resume --hf-lambda \
            --weight-decay --mhf-anneal --lookahead; do
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
expect 2 "trace $tmp/no/such/dir.csv: the directory $tmp/no/such does not exist" -- "$rnn" $r \
    --steps 10 --trace "$tmp/no/such/dir.csv"

for opt in nag hf; do
    r="--task addition --T 20 --batch 20 --eval-every 10 --eval-size 100 --optim $opt --hf-max-cg 10"
    "$rnn" $r --steps 40 > "$tmp/straight" 2>/dev/null
    "$rnn" $r --steps 20 --checkpoint "$tmp/half.ckpt" > /dev/null 2>&1
    "$rnn" $r --steps 40 --resume "$tmp/half.ckpt" > "$tmp/resumed" 2>/dev/null
    same_summary "mominit-rnn --optim $opt: resumed run equals the straight run" "$tmp/straight" "$tmp/resumed"
done
for opt in nag mhf; do
    # without a final phase: its place depends on --steps, which a resume may then not change
    a="--arch 784-30-6 --train-size 500 --batch 50 --eval-every 10 --eval-size 200 --optim $opt --hf-fixed-cg 5 --final-phase 0:0"
    "$ae" $a --steps 40 > "$tmp/straight" 2>/dev/null
    "$ae" $a --steps 20 --checkpoint "$tmp/half.ckpt" > /dev/null 2>&1
    "$ae" $a --steps 40 --resume "$tmp/half.ckpt" > "$tmp/resumed" 2>/dev/null
    same_summary "mominit-ae --optim $opt: resumed run equals the straight run" "$tmp/straight" "$tmp/resumed"
done
# --lookahead: NAG's look-ahead form. The same method rounded otherwise: the summary agrees with
# the default form's to about float precision; its checkpoints resume into the same run (here
# across the momentum's change at update 20, the resume point), and only with --lookahead.
expect 2 "lookahead is a form of NAG: it needs --optim nag, not cm" -- "$rnn" --optim cm --lookahead
expect 2 "lookahead is a form of NAG: it needs --optim nag, not hf" -- "$ae" --optim hf --lookahead
close_summary() { # close_summary LABEL FILE1 FILE2: train_loss within a relative 1e-4
    count=$((count + 1))
    a=$(tail -n 1 "$2" | sed -n 's/.* train_loss=\([^ ]*\) .*/\1/p')
    b=$(tail -n 1 "$3" | sed -n 's/.* train_loss=\([^ ]*\) .*/\1/p')
    if [ -n "$a" ] && [ -n "$b" ] &&
       awk -v a="$a" -v b="$b" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-4 * a) }'
    then echo "ok $count - $1 ($a, $b)"
    else echo "not ok $count - $1: '$a' vs '$b'"; fails=$((fails + 1)); fi
}
r="--task addition --T 20 --batch 20 --eval-every 10 --eval-size 100 --mu-warmup 0.9:20 --lr 1e-3"
"$rnn" $r --steps 40 > "$tmp/default" 2>/dev/null
"$rnn" $r --steps 40 --lookahead > "$tmp/straight" 2>/dev/null
close_summary "mominit-rnn --lookahead: the summary of the default form" "$tmp/default" "$tmp/straight"
"$rnn" $r --steps 20 --lookahead --checkpoint "$tmp/la.ckpt" > /dev/null 2>&1
"$rnn" $r --steps 40 --lookahead --resume "$tmp/la.ckpt" > "$tmp/resumed" 2>/dev/null
same_summary "mominit-rnn --lookahead: resumed run equals the straight run" "$tmp/straight" "$tmp/resumed"
expect 2 "la.ckpt does not match the flags: its NAG ran in the look-ahead form, with --lookahead" \
    -- "$rnn" $r --steps 40 --resume "$tmp/la.ckpt"
"$rnn" $r --steps 20 --checkpoint "$tmp/nola.ckpt" > /dev/null 2>&1
expect 2 "nola.ckpt does not match the flags: its NAG ran in the default form, without --lookahead" \
    -- "$rnn" $r --steps 40 --lookahead --resume "$tmp/nola.ckpt"
a="--arch 784-30-6 --train-size 500 --batch 50 --eval-every 10 --eval-size 200 --final-phase 10:0.5"
"$ae" $a --steps 40 > "$tmp/default" 2>/dev/null
expect 0 "^final steps=40 " -- "$ae" $a --steps 40 --lookahead --recon "$tmp/la.png"
cp "$tmp/out" "$tmp/straight"
close_summary "mominit-ae --lookahead (with a final phase): the summary of the default form" \
    "$tmp/default" "$tmp/straight"
"$rnn" --task addition --T 20 --steps 10 --batch 10 --eval-every 10 --eval-size 10 \
    --checkpoint "$tmp/rnn-ckpt-for-mismatch" > /dev/null 2>&1
# a checkpoint of other flags than these: refused, naming the flag and both values
expect 2 "rnn-ckpt-for-mismatch: --hidden is 100 in the checkpoint, 50 on the command line" \
    -- "$rnn" --task addition --T 20 --steps 30 --hidden 50 --resume "$tmp/rnn-ckpt-for-mismatch"
expect 2 "rnn-ckpt-for-mismatch: --optim is nag in the checkpoint, cm on the command line" -- \
    "$rnn" --task addition --T 20 --steps 30 --optim cm --resume "$tmp/rnn-ckpt-for-mismatch"
# another trainer's checkpoint
expect 1 "rnn-ckpt-for-mismatch: it was written by mominit-rnn, not mominit-ae" -- "$ae" \
    --arch 784-30-6 --train-size 100 --steps 30 --resume "$tmp/rnn-ckpt-for-mismatch"
# an older trainer's checkpoint (no trainer state): the library still tells what does not fit
strip="${MOMINIT_TEST_EXAMPLES:-$(dirname "$rnn")/../tests/test_examples}"
if [ -x "$strip" ] && "$strip" --strip-user-data "$tmp/rnn-ckpt-for-mismatch" "$tmp/old-rnn.ckpt"; then
    expect 2 "old-rnn.ckpt does not match the flags: unit layer 1 has 100 units in the checkpoint, 50" \
        -- "$rnn" --task addition --T 20 --steps 30 --hidden 50 --resume "$tmp/old-rnn.ckpt"
    expect 2 "does not match the flags: .*NAG optimizer" -- "$rnn" --task addition --T 20 \
        --steps 30 --optim cm --resume "$tmp/old-rnn.ckpt"
    expect 2 "does not match the flags: .*recurrent network" -- "$ae" --arch 784-30-6 \
        --train-size 100 --steps 30 --resume "$tmp/old-rnn.ckpt"
else
    count=$((count + 1))
    echo "ok $count # SKIP no $strip to write a checkpoint without trainer state"
fi
expect 2 "multiple of --eval-every" -- "$rnn" --eval-every 100 --checkpoint-every 150 \
    --checkpoint "$tmp/m.ckpt"
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
expect 2 "--no-center applies to the addition and multiplication" -- "$rnn" --task xor --no-center
# multiplication is centered unless --no-center says otherwise (the paper's setup); addition is not
m="--task multiplication --T 10 --batch 10 --eval-size 50 --steps 20 --eval-every 10"
expect 0 "task multiplication (centered) T=10" -- "$rnn" $m
cp "$tmp/out" "$tmp/mult-default"
expect 0 "task multiplication T=10" -- "$rnn" $m --no-center
cp "$tmp/out" "$tmp/mult-plain"
expect 0 "task multiplication (centered) T=10" -- "$rnn" $m --center
check "multiplication: the default is --center" cmp -s "$tmp/out" "$tmp/mult-default"
check "multiplication: --no-center is another run" sh -c "! cmp -s '$tmp/mult-plain' '$tmp/mult-default'"
expect 0 "task addition T=10" -- "$rnn" --task addition --T 10 --batch 10 --eval-size 50 --steps 0
expect 0 "^final steps=20 " -- "$rnn" $m --no-center --checkpoint "$tmp/mult.ckpt"
expect 2 "center is off in the checkpoint, on on the command line (resume with --no-center" -- \
    "$rnn" $m --steps 30 --resume "$tmp/mult.ckpt"
expect 0 "^final steps=30 " -- "$rnn" $m --no-center --steps 30 --resume "$tmp/mult.ckpt"
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
# The seconds column is the run's wall time: a resumed run's rows go on from the checkpoint's
# clock (not from the log, which another run may have written: here its seconds are made 500.25).
"$rnn" $r --steps 10 --checkpoint "$tmp/s.ckpt" --log "$tmp/s.csv" > /dev/null 2>&1
s10=$(tail -n 1 "$tmp/s.csv" | cut -d, -f6)
sed 's/,[0-9.]*$/,500.25/' "$tmp/s.csv" > "$tmp/s2.csv" && mv "$tmp/s2.csv" "$tmp/s.csv"
"$rnn" $r --steps 15 --resume "$tmp/s.ckpt" --log "$tmp/s.csv" > "$tmp/s.out" 2>/dev/null
count=$((count + 1))
if awk -F, -v s10="$s10" '$1 == 15 && $6 >= s10 + 0 && $6 < 60 { ok = 1 } END { exit !ok }' "$tmp/s.csv" &&
   grep -q 'seconds=[0-9]\{1,2\}\.' "$tmp/s.out"; then
    echo "ok $count - a resumed log's seconds go on from the checkpoint's clock"
else echo "not ok $count - resumed seconds: $(tail -1 "$tmp/s.csv") / $(tail -1 "$tmp/s.out")"
    fails=$((fails + 1)); fi
# an older trainer's checkpoint: from the log's last row
if [ -x "$strip" ] && "$strip" --strip-user-data "$tmp/s.ckpt" "$tmp/s-old.ckpt"; then
    "$rnn" $r --steps 10 --log "$tmp/s.csv" > /dev/null 2>&1
    sed 's/,[0-9.]*$/,500.25/' "$tmp/s.csv" > "$tmp/s2.csv" && mv "$tmp/s2.csv" "$tmp/s.csv"
    "$rnn" $r --steps 15 --resume "$tmp/s-old.ckpt" --log "$tmp/s.csv" > "$tmp/s.out" 2>/dev/null
    count=$((count + 1))
    if awk -F, '$1 == 15 && $6 >= 500.25 && $6 < 560 { ok = 1 } END { exit !ok }' "$tmp/s.csv" &&
       grep -q 'seconds=50[0-9]' "$tmp/s.out"; then
        echo "ok $count - from an older checkpoint, a resumed log's seconds go on from its last row"
    else echo "not ok $count - resumed seconds (older checkpoint): $(tail -1 "$tmp/s.csv") / $(tail -1 "$tmp/s.out")"
        fails=$((fails + 1)); fi
fi
expect 1 "already holds 20 updates" -- "$rnn" $r --steps 20 --resume "$tmp/k.ckpt"
expect 2 "--plot needs --log" -- "$rnn" $r --steps 5 --plot "$tmp/p.png"
expect 2 "checkpoint $tmp/no/such/k.ckpt: the directory $tmp/no/such does not exist" -- "$rnn" $r \
    --steps 5 --checkpoint "$tmp/no/such/k.ckpt"
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

# ---- review fixes ----------------------------------------------------------------------------
only_summary() { # only_summary LABEL: the last command's stdout is the summary line alone
    count=$((count + 1))
    if [ "$(wc -l < "$tmp/out")" -eq 1 ] && grep -q '^final steps=' "$tmp/out"; then
        echo "ok $count - $1"
    else echo "not ok $count - $1: stdout holds $(wc -c < "$tmp/out") bytes"; fails=$((fails + 1)); fi
}
# A gnuplot that fails the way the real one does when it cannot open its output: it draws on its
# stdout instead, complains on stderr and exits 1. It keeps the script it was given.
mkdir -p "$tmp/fakebin" "$tmp/nobin"
cat > "$tmp/fakebin/gnuplot" << 'EOF'
#!/bin/sh
cat > "${FAKE_GNUPLOT_IN:-/dev/null}"
printf '\211PNG\r\n\032\n(the image gnuplot drew on its stdout)\n'
echo "cannot open file; output not changed" >&2
exit 1
EOF
chmod +x "$tmp/fakebin/gnuplot"
fake() { env PATH="$tmp/fakebin:$PATH" FAKE_GNUPLOT_IN="$tmp/gp.in" "$@"; }
p="--task addition --T 10 --batch 10 --eval-size 20 --steps 20 --eval-every 10"
# 1. gnuplot's stdout never reaches ours; a plot that cannot be written makes the status 4
expect 4 "plot: gnuplot failed to write $tmp/p.png" -- fake "$rnn" $p --log "$tmp/p.csv" \
    --plot "$tmp/p.png"
only_summary "a failed --plot leaves stdout to the summary"
expect 2 "plot $tmp/no/such/p.png: the directory $tmp/no/such does not exist" -- fake "$rnn" $p \
    --log "$tmp/p.csv" --plot "$tmp/no/such/p.png"
expect 2 "log $tmp: is a directory" -- "$rnn" $p --log "$tmp"
expect 2 "log $tmp/p.csv/x.csv: Not a directory" -- "$rnn" $p --log "$tmp/p.csv/x.csv"
expect 2 "recon $tmp/no/such/r.png: the directory $tmp/no/such does not exist" -- "$ae" \
    --arch 784-20-5 --train-size 100 --steps 5 --recon "$tmp/no/such/r.png"
expect 2 "checkpoint $tmp: is a directory" -- "$rnn" $p --checkpoint "$tmp"
expect 2 "--log needs a file name" -- "$rnn" $p --log ""
# 7. no output may name the file of another output or of an input (however the name is written)
expect 2 "log $tmp/same.csv and --checkpoint $tmp/same.csv name the same file: each output needs" \
    -- "$rnn" $p --log "$tmp/same.csv" --checkpoint "$tmp/same.csv"
expect 2 "name the same file: each output needs its own" -- "$rnn" $p --log "$tmp/same.csv" \
    --trace "$tmp/../$(basename "$tmp")/./same.csv"
: > "$tmp/same.csv"
ln -s same.csv "$tmp/link.csv"
expect 2 "plot $tmp/link.csv name the same file" -- "$rnn" $p --log "$tmp/same.csv" \
    --plot "$tmp/link.csv"
expect 2 "resume $tmp/same.csv name the same file: the output would overwrite the input" -- \
    "$rnn" $p --log "$tmp/same.csv" --resume "$tmp/same.csv"
expect 2 "data $tmp/img.idx name the same file: the output would overwrite the input" -- "$ae" \
    --data "idx:$tmp/img.idx" --recon "$tmp/img.idx"
expect 2 "test-data $tmp/t.idx name the same file" -- "$ae" --data "idx:$tmp/img.idx" \
    --test-data "idx:$tmp/t.idx" --log "$tmp/t.idx"
expect 0 "^final steps=20 " -- "$rnn" $p --log /dev/null --trace /dev/null
check "the refused runs left the files alone" sh -c "[ ! -s '$tmp/same.csv' ] && [ ! -e '$tmp/img.idx' ]"
expect 0 "gnuplot is not installed" -- env PATH="$tmp/nobin" "$rnn" $p --log "$tmp/p.csv" \
    --plot "$tmp/p.png"
if [ -c /dev/full ] && [ -w /dev/full ]; then
    expect 4 "could not write /dev/full: No space left on device" -- "$ae" --arch 784-20-5 \
        --train-size 100 --batch 50 --steps 5 --eval-size 50 --recon /dev/full
    only_summary "a failed --recon leaves stdout to the summary"
    # 6. the reason of a log or trace that cannot be written
    expect 1 "cannot write the log /dev/full: No space left on device" -- "$rnn" $p --log /dev/full
    expect 1 "cannot write the trace /dev/full: No space left on device" -- "$rnn" $p --trace /dev/full
fi
if command -v gnuplot > /dev/null 2>&1; then
    expect 0 "learning curve in $tmp/ok.png" -- "$rnn" $p --log "$tmp/ok.csv" --plot "$tmp/ok.png"
    only_summary "a plotting run writes nothing but the summary on stdout"
    check "the plot is a PNG" sh -c "head -c 4 '$tmp/ok.png' | od -An -c | grep -q 'P   N   G'"
fi

# 2. the progress bar on a terminal: cleared to the end of the line, fitted to the width, ended by
# a newline when a signal kills the program
if command -v script > /dev/null 2>&1 && SHELL=/bin/sh script -qec true /dev/null < /dev/null > /dev/null 2>&1; then
    bars_fit() { # bars_fit FILE MAX: every redraw of the bar ends with ESC [K and fits in MAX columns
        esc=$(printf '\033')
        tr '\r' '\n' < "$1" | grep -v -e '^mominit-rnn: ' -e '^final ' -e '^$' > "$tmp/bars"
        [ -s "$tmp/bars" ] && ! grep -v "${esc}\[K\$" "$tmp/bars" | grep -q . &&
            sed "s/${esc}\[K//g" "$tmp/bars" | awk -v max="$2" 'length($0) > max { bad = 1 } END { exit bad }'
    }
    b="--task addition --T 10 --batch 10 --eval-size 10 --steps 20 --eval-every 1 --optim hf --hf-max-cg 5"
    SHELL=/bin/sh script -qec "stty cols 40; exec $rnn $b" /dev/null < /dev/null > "$tmp/tty40" 2>&1
    check "the bar fits a 40-column terminal and clears old characters" bars_fit "$tmp/tty40" 39
    SHELL=/bin/sh script -qec "stty cols 0; COLUMNS=50 exec $rnn $b" /dev/null < /dev/null > "$tmp/tty50" 2>&1
    check "without a terminal size the bar fits \$COLUMNS" bars_fit "$tmp/tty50" 49
    SHELL=/bin/sh script -qec "stty cols 0; unset COLUMNS; exec $rnn $b" /dev/null < /dev/null > "$tmp/tty80" 2>&1
    check "without a size or \$COLUMNS the bar fits 80 columns" bars_fit "$tmp/tty80" 79
    # SIGINT once the bar is on the screen (at most 30 s on a loaded machine)
    SHELL=/bin/sh script -qec "sh -c 'i=0; (while [ \$i -lt 30 ] && ! grep -q ETA $tmp/int; do sleep 1; i=\$((i + 1)); done; kill -INT \$\$) &
        exec $rnn --task addition --T 40 --steps 1000000 --eval-every 100000'" /dev/null < /dev/null > "$tmp/int" 2>&1
    st=$?
    check "SIGINT: status 130, the bar's line ended (status $st)" \
        sh -c "[ $st -eq 130 ] && [ \"\$(tail -c 1 '$tmp/int' | od -An -c | tr -d ' ')\" = '\n' ] &&
               grep -q 'ETA' '$tmp/int'"
fi

# 3. after a divergence mominit-rnn reports the kept parameters: the summary of a run stopped
# just before the update that diverged has the same test error; no blank line on stderr
d="--task addition --T 10 --eval-size 100 --eval-every 100 --lr 50"
expect 3 "diverged at update 9" -- "$rnn" $d --steps 300
cp "$tmp/out" "$tmp/div"
count=$((count + 1))
if grep -q '^final steps=8 train_loss=[0-9.e+-]* train_error=[0-9.e+-]* test_error=[0-9.e+-]* ' "$tmp/div" &&
   ! grep -q '^$' "$tmp/err"; then echo "ok $count - a diverged run reports finite errors"
else echo "not ok $count - diverged run: $(cat "$tmp/div")"; fails=$((fails + 1)); fi
"$rnn" $d --steps 8 > "$tmp/div8" 2> /dev/null
count=$((count + 1))
if [ "$(sed 's/.*test_error=\([^ ]*\).*/\1/' "$tmp/div")" = "$(sed 's/.*test_error=\([^ ]*\).*/\1/' "$tmp/div8")" ]; then
    echo "ok $count - the diverged run reports the parameters of update 8"
else echo "not ok $count - diverged vs 8 updates: $(cat "$tmp/div") / $(cat "$tmp/div8")"
    fails=$((fails + 1)); fi
# train_loss is the final parameters' loss, not a mean over the last evaluation interval
r="--task addition --T 10 --batch 10 --eval-size 50 --steps 8"
"$rnn" $r --eval-every 4 > "$tmp/l4" 2> /dev/null
"$rnn" $r --eval-every 8 > "$tmp/l8" 2> /dev/null
same_summary "mominit-rnn: train_loss does not depend on --eval-every" "$tmp/l4" "$tmp/l8"
a="--arch 784-20-5 --train-size 300 --batch 50 --eval-size 100 --steps 10"
"$ae" $a --eval-every 5 > "$tmp/l5" 2> /dev/null
"$ae" $a --eval-every 10 > "$tmp/l10" 2> /dev/null
same_summary "mominit-ae: train_loss does not depend on --eval-every" "$tmp/l5" "$tmp/l10"
a="--arch 784-20-5 --train-size 300 --batch 50 --eval-size 100 --eval-every 100 --final-phase 0:0 --output linear --lr 10"
expect 3 "diverged" -- "$ae" $a --steps 300
cp "$tmp/out" "$tmp/aediv"
k=$(sed -n 's/^final steps=\([0-9]*\) .*/\1/p' "$tmp/aediv")
"$ae" $a --steps "${k:-1}" > "$tmp/aek" 2> /dev/null
same_summary "mominit-ae: a diverged run reports the state of its last update" "$tmp/aediv" "$tmp/aek"

# 4. the progress display's loss is the running mean since the last evaluation, what the log
# records: the per-update losses of a log with --eval-every 1 give it
r="--task addition --T 10 --batch 10 --eval-size 10 --steps 10"
"$rnn" $r --eval-every 1 --log "$tmp/each.csv" > /dev/null 2>&1
"$rnn" $r --eval-every 10 > /dev/null 2> "$tmp/prog"
count=$((count + 1))
if awk -F, 'NR == FNR { if (FNR > 1) { s += $4; mean[FNR - 1] = s / (FNR - 1) } next }
     /^step / { split($2, a, "/"); k = a[1]; v = $0; sub(/.*  loss /, "", v); sub(/ .*/, "", v)
                n++; d = v - mean[k]; if (d < 0) d = -d; if (d > 1e-5 * mean[k]) bad = 1 }
     END { exit bad || n != 10 }' "$tmp/each.csv" FS=' ' "$tmp/prog"; then
    echo "ok $count - the progress loss is the running mean of the interval"
else echo "not ok $count - progress loss:"; sed 's/^/#   /' "$tmp/prog" | head -4; fails=$((fails + 1)); fi

# 5. a first-order minibatch larger than the training set
expect 2 "--batch 301 exceeds the 300 training images" -- "$ae" --arch 784-20-5 --train-size 300 \
    --batch 301 --steps 2

# 6. messages
expect 2 "--T 3 is too small for task addition (at least 10)" -- "$rnn" --task addition --T 3
expect 2 "--T 9 is too small for task temporal-order (at least 10)" -- "$rnn" --task temporal-order --T 9
expect 2 "--T 1 is too small for task permutation (at least 2)" -- "$rnn" --task permutation --T 1
expect 0 "at least 10 for addition" -- "$rnn" --help
expect 2 "--data idx: needs a file name" -- "$ae" --data idx:
expect 2 "--test-data idx: needs a file name" -- "$ae" --data "idx:$tmp/none" --test-data idx:
arch=784 i=1
while [ $i -lt 32 ]; do arch="$arch-2" i=$((i + 1)); done
expect 2 "--arch takes at most 31 sizes" -- "$ae" --arch "$arch"
expect 2 "--checkpoint-every needs --checkpoint" -- "$rnn" $p --checkpoint-every 10
expect 2 "--bias-only trains nothing" -- "$rnn" $p --bias-only --steps 100
expect 0 "^final steps=0 " -- "$rnn" --task addition --T 10 --eval-size 20 --bias-only

# 7. the banner and plot title name what the optimizer uses; momentum flags it ignores warn
expect 4 "SGD lr 0.001, batch" -- fake "$rnn" $p --optim sgd --lr 1e-3 --log "$tmp/t.csv" \
    --plot "$tmp/t.png"
check "the SGD banner and plot title show no momentum" sh -c "! grep -q ' mu' '$tmp/err' &&
    grep -q \"^set title 'addition T=10, SGD lr 0.001, seed 1'\" '$tmp/gp.in'"
expect 0 "HF lambda 1, max CG 250, CG decay 0.95, structural damping 0.03, batch" -- "$rnn" $p \
    --optim hf --steps 0
expect 0 "momentum-HF lambda 1, 50 CG iterations" -- "$rnn" $p --optim mhf --steps 0
expect 0 "NAG lr 0.0003 mu 0.9:1000 then 0.995" -- "$rnn" $p --steps 0
expect 0 "warning: --mu0 is ignored with --optim sgd" -- "$rnn" $p --optim sgd --mu0 0.9 --steps 0
expect 0 "warning: --mu-warmup is ignored with --optim hf" -- "$rnn" $p --optim hf --mu-warmup 0.5:10 \
    --steps 0
expect 0 "warning: --lr is ignored with --optim mhf" -- "$rnn" $p --optim mhf --lr 0.1 --steps 0
expect 0 "warning: --mu-max is ignored with --optim sgd" -- "$ae" --arch 784-20-5 --train-size 100 \
    --steps 1 --optim sgd --mu-max 0.9
expect 0 "SGD lr 0.005, batch" -- "$ae" --arch 784-20-5 --train-size 100 --steps 1 --optim sgd \
    --mu-max 0 --final-phase 0:0.9
check "no warning for momentum flags that ask for none" sh -c "! grep -q warning '$tmp/err'"

# 8. --recon says which images it shows: the training images when there is no test set
printf '\0\0\10\3\0\0\0\24\0\0\0\4\0\0\0\4' > "$tmp/small.idx"
head -c 320 /dev/zero | tr '\0' '\200' >> "$tmp/small.idx"
expect 0 "training images (top) and reconstructions (bottom) in $tmp/small.png" -- "$ae" \
    --data "idx:$tmp/small.idx" --arch 16-4-2 --batch 5 --steps 2 --recon "$tmp/small.png"


# 9. a run resumed from a checkpoint between two evaluations (the final one of a run whose --steps
# is not a multiple of --eval-every) logs and ends exactly as one run of the total: the running
# loss of the interval is in the checkpoint, and the first run's last row gives way to the next
# evaluation's
same_rows() { # same_rows LABEL CSV1 CSV2: the same rows, all columns but the seconds
    count=$((count + 1))
    if [ -s "$2" ] && cut -d, -f1-5 "$2" > "$tmp/rows1" && cut -d, -f1-5 "$3" > "$tmp/rows2" &&
       cmp -s "$tmp/rows1" "$tmp/rows2"; then echo "ok $count - $1"
    else echo "not ok $count - $1"; diff "$tmp/rows1" "$tmp/rows2" | sed 's/^/#   /' | head -8
        fails=$((fails + 1)); fi
}
r="--task addition --T 20 --batch 10 --eval-every 10 --eval-size 50"
rm -f "$tmp/u.csv" "$tmp/u-tr.csv" "$tmp/v.csv" "$tmp/v-tr.csv"
"$rnn" $r --steps 40 --log "$tmp/u.csv" --trace "$tmp/u-tr.csv" > "$tmp/u-rnn.out" 2> /dev/null
"$rnn" $r --steps 25 --checkpoint "$tmp/v.ckpt" --log "$tmp/v.csv" --trace "$tmp/v-tr.csv" \
    > /dev/null 2>&1
expect 0 "resumed from $tmp/v.ckpt after 25 updates" -- "$rnn" $r --steps 40 --resume "$tmp/v.ckpt" \
    --log "$tmp/v.csv" --trace "$tmp/v-tr.csv"
same_summary "mominit-rnn: 25 + 15 updates end as 40 (--eval-every 10)" "$tmp/u-rnn.out" "$tmp/out"
same_rows "mominit-rnn: 25 + 15 updates log the rows of 40" "$tmp/u.csv" "$tmp/v.csv"
check "mominit-rnn: 25 + 15 updates trace the rows of 40" cmp -s "$tmp/u-tr.csv" "$tmp/v-tr.csv"
cp "$tmp/v.ckpt" "$tmp/v-25.ckpt"
aw="--arch 784-20-5 --train-size 300 --batch 50 --eval-every 10 --eval-size 100 --final-phase 0:0"
rm -f "$tmp/u.csv" "$tmp/v.csv"
"$ae" $aw --steps 40 --log "$tmp/u.csv" > "$tmp/u.out" 2> /dev/null
"$ae" $aw --steps 25 --checkpoint "$tmp/w.ckpt" --log "$tmp/v.csv" > /dev/null 2>&1
expect 0 "resumed from $tmp/w.ckpt after 25 updates" -- "$ae" $aw --steps 40 --resume "$tmp/w.ckpt" \
    --log "$tmp/v.csv"
same_summary "mominit-ae: 25 + 15 updates end as 40 (--eval-every 10)" "$tmp/u.out" "$tmp/out"
same_rows "mominit-ae: 25 + 15 updates log the rows of 40" "$tmp/u.csv" "$tmp/v.csv"

# the flags that shape the run are in the checkpoint: other ones are refused, naming the flag
expect 2 "^mominit-rnn: --resume $tmp/v-25.ckpt: --lr is 0.0003 in the checkpoint, 0.001 on the command line (resume with the flags of the run that wrote it)\$" \
    -- "$rnn" $r --steps 40 --resume "$tmp/v-25.ckpt" --lr 0.001
expect 2 "v-25.ckpt: --seed is 1 in the checkpoint, 2 on the command line" -- "$rnn" $r \
    --steps 40 --resume "$tmp/v-25.ckpt" --seed 2
expect 2 "v-25.ckpt: --task is addition in the checkpoint, multiplication on the command line" -- \
    "$rnn" --task multiplication --T 20 --batch 10 --eval-every 10 --eval-size 50 --steps 40 \
    --resume "$tmp/v-25.ckpt"
expect 2 "v-25.ckpt: --eval-every is 10 in the checkpoint, 5 on the command line" -- "$rnn" $r \
    --steps 40 --resume "$tmp/v-25.ckpt" --eval-every 5
expect 2 "w.ckpt: --lr is 0.005 in the checkpoint, 0.01 on the command line" -- "$ae" $aw --steps 40 \
    --resume "$tmp/w.ckpt" --lr 0.01
expect 1 "v-25.ckpt: it was written by mominit-rnn, not mominit-ae" -- "$ae" $aw --steps 40 \
    --resume "$tmp/v-25.ckpt"
expect 1 "w.ckpt: it was written by mominit-ae, not mominit-rnn" -- "$rnn" $r --steps 40 \
    --resume "$tmp/w.ckpt"
# flags the optimizer ignores, and files, may change; --data is the data, wherever it lies
expect 0 "^final steps=40 " -- "$rnn" $r --steps 40 --resume "$tmp/v-25.ckpt" --hf-lambda 7 \
    --checkpoint "$tmp/v2.ckpt" --checkpoint-every 20 --threads 1
printf '\0\0\10\3\0\0\0\24\0\0\0\4\0\0\0\4' > "$tmp/small2.idx"
head -c 320 /dev/zero | tr '\0' '\201' >> "$tmp/small2.idx"
cp "$tmp/small.idx" "$tmp/moved.idx"
i="--arch 16-4-2 --batch 5 --eval-every 2 --final-phase 0:0"
"$ae" --data "idx:$tmp/small.idx" $i --steps 3 --checkpoint "$tmp/i.ckpt" > /dev/null 2>&1
expect 2 "i.ckpt: --data is idx:$tmp/small.idx in the checkpoint, idx:$tmp/small2.idx on the command line" \
    -- "$ae" --data "idx:$tmp/small2.idx" $i --steps 4 --resume "$tmp/i.ckpt"
expect 0 "^final steps=4 " -- "$ae" --data "idx:$tmp/moved.idx" $i --steps 4 --resume "$tmp/i.ckpt"
# effective values, not the raw flags: a final phase that lowers nothing is none, whatever its
# text; the sizes of --arch, not its text; a run that is complete says so rather than "raise
# --steps" when its --steps may not change
expect 0 "^final steps=4 " -- "$ae" --data "idx:$tmp/small.idx" --arch 016-4-2 --batch 5 \
    --eval-every 2 --final-phase 0:0.5 --steps 4 --resume "$tmp/i.ckpt"
"$ae" --data "idx:$tmp/small.idx" $i --steps 3 --final-phase 2:0.5 --checkpoint "$tmp/i3.ckpt" \
    > /dev/null 2>&1
expect 1 "nothing to train (the run is complete" -- "$ae" --data "idx:$tmp/small.idx" $i --steps 3 \
    --final-phase 2:0.5 --resume "$tmp/i3.ckpt"
"$rnn" $r --steps 20 --optim mhf --hf-fixed-cg 3 --checkpoint "$tmp/m.ckpt" > /dev/null 2>&1
expect 0 "^final steps=30 " -- "$rnn" $r --steps 30 --optim mhf --hf-fixed-cg 3 --hf-max-cg 7 \
    --resume "$tmp/m.ckpt"
# mominit-ae's final phase ends at --steps: a resume with another --steps would move it
expect 2 "i2.ckpt: --steps is 3 in the checkpoint, 4 on the command line (the final phase" -- sh -c \
    "'$ae' --data 'idx:$tmp/small.idx' $i --steps 3 --final-phase 2:0.5 --checkpoint '$tmp/i2.ckpt' \
       > /dev/null 2>&1; exec '$ae' --data 'idx:$tmp/small.idx' $i --steps 4 --final-phase 2:0.5 \
       --resume '$tmp/i2.ckpt'"
# an older trainer's checkpoint (no trainer state): accepted with a warning, under the old rules
# (the log keeps the first run's last row; the next row averages the updates after the resume)
if [ -x "$strip" ] && "$strip" --strip-user-data "$tmp/v-25.ckpt" "$tmp/v-old.ckpt"; then
    "$rnn" $r --steps 25 --log "$tmp/o.csv" > /dev/null 2>&1
    expect 0 "warning: --resume $tmp/v-old.ckpt holds no trainer state (an older trainer wrote it): its flags cannot be checked" \
        -- "$rnn" $r --steps 40 --resume "$tmp/v-old.ckpt" --log "$tmp/o.csv"
    same_summary "mominit-rnn: resumed from an older checkpoint, the same parameters" "$tmp/u-rnn.out" \
        "$tmp/out"
    check "an older checkpoint's resumed log keeps its row at 25" \
        test "$(cut -d, -f1 "$tmp/o.csv" | tr '\n' ' ')" = "step 10 20 25 30 40 "
fi

# 10. second review: files the run did not name, outputs that cannot be written, messages
# the test set guessed beside --data idx:DIR/train-X (DIR/t10k-X) is an input like --test-data's
mkdir -p "$tmp/ds"
cp "$tmp/small.idx" "$tmp/ds/train-x.idx"
cp "$tmp/small.idx" "$tmp/ds/t10k-x.idx"
expect 2 "--log $tmp/ds/t10k-x.idx and the test set $tmp/ds/t10k-x.idx name the same file: the output would overwrite the input" \
    -- "$ae" --data "idx:$tmp/ds/train-x.idx" --arch 16-4-2 --batch 5 --steps 2 --log "$tmp/ds/t10k-x.idx"
expect 2 "--recon $tmp/ds/t10k-x.idx and the test set" -- "$ae" --data "idx:$tmp/ds/train-x.idx" \
    --arch 16-4-2 --batch 5 --steps 2 --recon "$tmp/ds/t10k-x.idx"
check "the guessed test set was left alone" cmp -s "$tmp/small.idx" "$tmp/ds/t10k-x.idx"
# a resumed log or trace is cut where it is: a symbolic link stays a link to the same file, and a
# device stays a device
r="--task addition --T 10 --batch 5 --eval-every 5 --eval-size 10"
mkdir -p "$tmp/logs"
rm -f "$tmp/logs/real.csv" "$tmp/link.csv" "$tmp/l.ckpt"
ln -s logs/real.csv "$tmp/link.csv"
"$rnn" $r --steps 5 --checkpoint "$tmp/l.ckpt" --log "$tmp/link.csv" > /dev/null 2>&1
echo "10,0.9,0.0003,0.5,0.5,1.0" >> "$tmp/logs/real.csv" # as if a killed run had gone on
expect 0 "^final steps=15 " -- "$rnn" $r --steps 15 --resume "$tmp/l.ckpt" --log "$tmp/link.csv"
check "a resumed log that is a symbolic link stays one, and its file gets the rows" sh -c \
    "[ -L '$tmp/link.csv' ] && [ \"\$(cut -d, -f1 '$tmp/logs/real.csv' | tr '\n' ' ')\" = 'step 5 10 15 ' ] &&
     ! grep -q '^10,0.9,0.0003,0.5,0.5,1.0\$' '$tmp/logs/real.csv'"
expect 0 "^final steps=15 " -- "$rnn" $r --steps 15 --resume "$tmp/l.ckpt" --log /dev/null \
    --trace /dev/null
check "resuming with --log /dev/null leaves the device alone" test -c /dev/null
expect 2 "checkpoint /dev/null: is not a regular file" -- "$rnn" $r --steps 5 --checkpoint /dev/null
expect 2 "--resume needs a file name" -- "$rnn" $r --steps 5 --resume ""
# a usage error found after the flags were read is still the only line
expect 2 "--arch starts with 784 but the images have 16 pixels" -- "$ae" --data "idx:$tmp/small.idx" \
    --optim sgd --mu-max 0.9 --steps 1
expect 2 "--optim is nag in the checkpoint, sgd on the command line" -- "$rnn" $r --steps 20 \
    --resume "$tmp/l.ckpt" --optim sgd --mu0 0.9
expect 2 "--hf-curv-batch 500 exceeds the 20 training images" -- "$ae" --data "idx:$tmp/small.idx" \
    --arch 16-4-2 --optim hf --hf-curv-batch 500 --steps 1
expect 2 "--clip applies to sgd, cm and nag" -- "$rnn" $r --steps 5 --optim hf --clip 1
expect 2 "--plot has no learning curve to draw: --steps 0 trains nothing" -- "$rnn" $r --steps 0 \
    --log "$tmp/z.csv" --plot "$tmp/z.png"
# numbers out of range say so
expect 2 "--steps must be in 0..1099511627776, got 99999999999999999999999" -- "$rnn" \
    --steps 99999999999999999999999
expect 2 "--seed must be at most 18446744073709551615, got 18446744073709551616" -- "$rnn" \
    --seed 18446744073709551616
expect 2 "--lr must be in \[1e-12, 100\], got 1e-400" -- "$rnn" --lr 1e-400
expect 2 "--lr must be in \[1e-12, 100\], got inf" -- "$rnn" --lr inf
expect 2 "--mu-warmup needs VALUE:STEPS, got '0.9:'" -- "$rnn" --mu-warmup 0.9:
# every value of --init-seed is a seed (the largest too)
"$rnn" $r --steps 0 --seed 5 > "$tmp/is-none" 2>/dev/null
"$rnn" $r --steps 0 --seed 5 --init-seed 18446744073709551615 > "$tmp/is-max" 2>/dev/null
check "--init-seed 18446744073709551615 is another initial network" sh -c \
    "grep -q '^final' '$tmp/is-max' && ! cmp -s '$tmp/is-none' '$tmp/is-max'"
# flags the chosen optimizer or network does not use: a warning each, and the run goes on
expect 0 "warning: --hf-max-cg is ignored with --optim nag (it is for hf)" -- "$rnn" $r --steps 0 \
    --hf-max-cg 5
expect 0 "warning: --mhf-anneal is ignored with --optim hf (it is for mhf)" -- "$rnn" $r --steps 0 \
    --optim hf --mhf-anneal 10:5
expect 0 "warning: --hf-struct is ignored: it is for recurrent networks" -- "$ae" \
    --data "idx:$tmp/small.idx" --arch 16-4-2 --optim hf --hf-struct 0.1 --steps 1
expect 0 "warning: --batch is ignored with --optim mhf (it is for sgd, cm and nag)" -- "$ae" \
    --data "idx:$tmp/small.idx" --arch 16-4-2 --optim mhf --batch 5 --hf-fixed-cg 2 --steps 1
# a missing gnuplot is told once
expect 0 "gnuplot is not installed" -- env PATH="$tmp/nobin" "$rnn" $r --steps 10 \
    --log "$tmp/g.csv" --plot "$tmp/g.png"
check "a missing gnuplot is told once" test "$(grep -c gnuplot "$tmp/err")" -eq 1
# the summary line and the help must reach stdout, or the status says they did not
if [ -c /dev/full ] && [ -w /dev/full ]; then
    expect 4 "cannot write the summary line to standard output: No space left on device" -- \
        sh -c "exec '$rnn' $r --steps 5 > /dev/full"
    expect 4 "cannot write the summary line to standard output" -- \
        sh -c "exec '$ae' --data 'idx:$tmp/small.idx' --arch 16-4-2 --batch 5 --steps 2 > /dev/full"
    expect 1 "cannot write the help to standard output" -- sh -c "exec '$rnn' --help > /dev/full"
fi
expect 4 "cannot write the summary line to standard output" -- sh -c "exec '$rnn' $r --steps 5 >&-"

echo "1..$count"
[ "$fails" -eq 0 ]
