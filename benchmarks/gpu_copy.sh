# Sourced by gpu_study.sh and gpu_real.sh: copy the checkout to a private folder and install it
# there, so the tree the device tool re-sends on every call never changes under a running job.
#   copy_checkout SRC RUN PIP_LOG
copy_checkout() {
  local src=$1 run=$2 log=$3
  rm -rf "$run" && mkdir -p "$run" && (cd "$src" && tar --exclude=./.sglang-bundle --exclude=./.model-parts \
    --exclude=./.git --exclude=./.whl --exclude=./.venv --exclude=./.jit-cache -cf - .) | (cd "$run" && tar -xf -)
  (cd "$run" && python3 -m pip install -q --no-deps --no-build-isolation -e . > "$log" 2>&1)
}
