#!/usr/bin/env bash
# The Debian packages (packaging/CMakeLists.txt): made with `cpack -G DEB` from this build, unpacked into a
# scratch root (dpkg -x, as dpkg would install them), then: the files are where they belong, dependencies come
# from the binaries (dpkg-shlibdeps), the systemd units verify and are sandboxed, the installed server finds its
# rules and consent page without --rules or --web-root, and an integrator builds against libkyotaku-dev.
# Usage: deb_test.sh BUILD_DIR SOURCE_DIR
set -uo pipefail
build=$1 src=$2
source "$src/tests/server/testlib.sh"

(cd "$build" && cpack -G DEB -B "$work/debs" > "$work/cpack.log" 2>&1) || { cat "$work/cpack.log"; exit 1; }
deb() { ls "$work/debs/$1"_*.deb 2> /dev/null | head -1; }
for p in kyotaku kyotaku-bridge libkyotaku-dev; do check "package $p is made" test -n "$(deb $p)"; done
field() { dpkg-deb -f "$(deb "$1")" "$2"; }
check "kyotaku depends on the libraries it links" bash -c "for l in libssl3 libpq5 libsqlite3-0 libtomlplusplus3 libqrencode4 libpng16-16 libz3-4; do grep -q \"\$l\" <<< '$(field kyotaku Depends)' || exit 1; done"
check "kyotaku-bridge depends on pcsclite" grep -q libpcsclite1 <<< "$(field kyotaku-bridge Depends)"
check "libkyotaku-dev depends on simdjson's headers" grep -q libsimdjson-dev <<< "$(field libkyotaku-dev Depends)"
check "versions are the project's" test "$(field kyotaku Version)" = "$(sed -n 's/^project(kyotaku VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")"
check "kyotaku runs postinst" bash -c "dpkg-deb -I '$(deb kyotaku)' postinst | grep -q kyotaku.toml"
# The maintainer scripts, run against a scratch root (DPKG_ROOT) with a systemctl that only records what it was asked.
dpkg-deb -e "$(deb kyotaku)" "$work/control"
fake=$work/fake-root
mkdir -p "$fake/etc/kyotaku/tls" "$fake/etc/systemd/system/multi-user.target.wants" "$fake/run/systemd/system" "$work/fake-bin"
printf '#!/bin/sh\necho "$*" >> %s/systemctl.log\n' "$work" > "$work/fake-bin/systemctl"
chmod +x "$work/fake-bin/systemctl"
touch "$fake/etc/kyotaku/kyotaku.toml"
wants=$fake/etc/systemd/system/multi-user.target.wants
ln -s /usr/lib/systemd/system/kyotaku.service "$wants/kyotaku.service"
ln -s "/usr/lib/systemd/system/kyotaku-relay@.service" "$wants/kyotaku-relay@srv-oqs-clinic1.service"
ln -s /usr/lib/systemd/system/other.service "$wants/other.service"
maint() { DPKG_ROOT=$fake PATH=$work/fake-bin:$PATH sh "$work/control/$1" "$2"; }
maint prerm upgrade
check "an upgrade stops nothing" test ! -e "$work/systemctl.log"
maint prerm remove
check "removing the package stops the server and every relay first" grep -qx "stop kyotaku.service kyotaku-relay@\*.service" "$work/systemctl.log"
maint postrm remove
check "a remove keeps the configuration and the enabled units" test -e "$fake/etc/kyotaku/kyotaku.toml" -a -L "$wants/kyotaku.service"
maint postrm purge
check "a purge removes the configuration postinst made" test ! -e "$fake/etc/kyotaku/kyotaku.toml"
check "and the links systemctl enable made, which would dangle" test ! -L "$wants/kyotaku.service" -a ! -L "$wants/kyotaku-relay@srv-oqs-clinic1.service"
check "but no other unit's" test -L "$wants/other.service"
check "then systemd reloads its units" grep -qx "daemon-reload" "$work/systemctl.log"

root=$work/root
for p in kyotaku kyotaku-bridge libkyotaku-dev; do dpkg -x "$(deb $p)" "$root"; done
has() { test -e "$root/$1"; }
check "the command" has usr/bin/kyotaku
check "and its full command, which the front runs for every command but eval" has usr/libexec/kyotaku/kyotaku-full
check "the bridge" has usr/bin/kyotaku-bridge
check "every rule file" test "$(find "$root/usr/share/kyotaku/rules" -name '*.rules' | wc -l)" = "$(find "$src/rules" -name '*.rules' | wc -l)"
check "the consent page" has usr/share/kyotaku/web/index.html
# The page's files carry content-hashed names (manifest.json maps each to its name).
web_name() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["files"][sys.argv[2]])' "$root/usr/share/kyotaku/web/manifest.json" "$1"; }
check "its WebAssembly" has "usr/share/kyotaku/web/$(web_name kyotaku-page.wasm)"
check "and the rule workbench" has usr/share/kyotaku/workbench/index.html
check "the example configuration" has usr/share/kyotaku/examples/kyotaku.toml
check "the balancer's example" has usr/share/kyotaku/examples/haproxy.cfg
for f in patroni.yml etcd.conf haproxy-postgresql.cfg; do check "the high-availability example $f" has usr/share/kyotaku/examples/ha/$f; done
check "the operations guide" has usr/share/doc/kyotaku/operations.md
check "the guides it links to" has usr/share/doc/kyotaku/security.md
check "and the example it links to" has usr/share/doc/kyotaku/examples/kyotaku.toml
check "the server unit" has usr/lib/systemd/system/kyotaku.service
check "the relay template unit" has "usr/lib/systemd/system/kyotaku-relay@.service"
check "the relay's user" has usr/lib/sysusers.d/kyotaku.conf
check "the bridge user unit" has usr/lib/systemd/user/kyotaku-bridge.service
check "the headers" has usr/include/kyotaku/engine.hpp
check "the CMake package" bash -c "ls '$root'/usr/lib/*/cmake/kyotaku/kyotakuConfig.cmake '$root'/usr/lib/cmake/kyotaku/kyotakuConfig.cmake 2>/dev/null | grep -q ."
check "nothing outside /usr" test "$(ls "$root")" = usr

# The units: systemd's own checker (on this machine's systemd; our binaries are not installed here, which is
# the one complaint allowed), and the server unit's sandboxing score (offline, on the unit file).
verify() {  # verify [--user] UNIT_FILE
    local out
    out=$(XDG_RUNTIME_DIR=$work systemd-analyze "$@" 2>&1 | grep -v "Command /usr/bin/kyotaku\(-bridge\)\? is not executable")
    [ -z "$out" ] || { echo "$out"; return 1; }
}
check "kyotaku.service verifies" verify verify "$root/usr/lib/systemd/system/kyotaku.service"
check "kyotaku-relay@.service verifies" verify verify "$root/usr/lib/systemd/system/kyotaku-relay@.service"
check "kyotaku-bridge.service verifies (user)" verify --user verify "$root/usr/lib/systemd/user/kyotaku-bridge.service"
printf '[Service]\nExecStart=/bin/true\nProtectSystem=bogus\n' > "$work/bad.service"
check "(the check does catch a mistake)" bash -c "XDG_RUNTIME_DIR='$work' systemd-analyze verify '$work/bad.service' 2>&1 | grep -q 'protect system value'"
score=$(systemd-analyze security --offline=yes --root="$root" "$root/usr/lib/systemd/system/kyotaku.service" 2>/dev/null | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p')
echo "kyotaku.service exposure: ${score:-?}"
check "kyotaku.service is sandboxed (exposure below 2.5 of 10)" awk -v s="${score:-10}" 'BEGIN { exit !(s < 2.5) }'

# The installed server, from the scratch root, with neither --rules nor --web-root.
"$src/scripts/make-test-pki" "$work/pki" 0110113719 > /dev/null
out=$("$root/usr/bin/kyotaku" serve --tls-dir "$work/pki" --db "$work/k.sqlite" --check-config 2>&1)
check "the installed server finds the installed rules" grep -q "^rules = $root/usr/share/kyotaku/rules  (default)" <<< "$out"
check "and the installed page" grep -q "^web_root = $root/usr/share/kyotaku/web  (default)" <<< "$out"
check "the example configuration is valid" bash -c "'$root/usr/bin/kyotaku' serve --config '$root/usr/share/kyotaku/examples/kyotaku.toml' --tls-dir '$work/pki' --db '$work/k.sqlite' --check-config > /dev/null 2>&1"
start_server "$work/serve.log" "$root/usr/bin/kyotaku" serve --tls-dir "$work/pki" --db "$work/k.sqlite" --port 0
get() { status none "$U$1"; }
check "the installed server starts" test -n "$port"
check "and serves the page's files" test "$(get "/web/$(web_name app.js)")" = 200
check "and its rules to the page" test "$(get /web/rules.bundle)" = 200
check "and is ready" test "$(get /readyz)" = 200
stop_server
version=$(sed -n 's/^project(kyotaku VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
out=$("$root/usr/bin/kyotaku" --version 2>&1); rc=$?
check "kyotaku --version exits 0" test $rc = 0
check "saying the package's version" grep -q "^kyotaku $version (kyotaku-rules " <<< "$out"
check "the server unit starts without card-ca.pem (a credential without a certificate instead: serve warns)" \
    grep -qx "SetCredential=card-ca.pem:absent" "$root/usr/lib/systemd/system/kyotaku.service"
check "the installed front answers eval" bash -c "echo '{\"id\":7}' | '$root/usr/bin/kyotaku' eval --rules '$root/usr/share/kyotaku/rules' | grep -q '^{\"id\":7,'"
check "the installed rules pass their tests" bash -c "'$root/usr/bin/kyotaku' test '$root/usr/share/kyotaku/rules' | grep -q ' 0 failed'"

# An integrator's project against libkyotaku-dev in the scratch root.
# The README's own project (the fenced blocks after its "consumer:" markers, as tests/consumer/run.sh takes them).
readme_block() {
    awk -v name="$1" '
        $0 == "<!-- consumer: " name " -->" { found = 1; next }
        found && /^```/ { if (inside) exit; inside = 1; next }
        inside { print }' "$src/README.md"
}
mkdir -p "$work/app"
readme_block CMakeLists.txt > "$work/app/CMakeLists.txt"
readme_block main.cpp > "$work/app/main.cpp"
cmake -S "$work/app" -B "$work/consumer" -G Ninja -DCMAKE_PREFIX_PATH="$root/usr" > "$work/configure.log" 2>&1 || cat "$work/configure.log"
cmake --build "$work/consumer" > "$work/consumer.log" 2>&1 || cat "$work/consumer.log"
check "a project builds against libkyotaku-dev" grep -q "^reinquiry_allowed: yes — " <<< "$("$work/consumer/app" "$src/rules" 2>&1)"

finish
