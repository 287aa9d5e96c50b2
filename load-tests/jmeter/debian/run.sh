#!/usr/bin/env bash
# Runs ../haven.jmx with Debian's JMeter 2.13, the only JMeter Debian packages
# (apt-get install jmeter jmeter-http jmeter-java groovy). Three things stand
# between that JMeter and a plan saved by JMeter 5:
#   - Debian's XStream (>= 1.4.18) refuses JMeter's own classes unless told
#     otherwise: HavenJMeter.java opens it before JMeter starts;
#   - 2.13 does not know the result file's `sentBytes` field: dropped;
#   - 2.13 reads a JSR223 element's `cacheKey` as the key of its compiled
#     script, so two elements with `true` would share one script: emptied.
# JMeter's log goes to $JMETER_LOG (target/bench/jmeter.log). Every argument
# goes to JMeter, e.g.
#   load-tests/jmeter/debian/run.sh -Jthreads=20 -Jduration=60 -Jresults=target/bench/jmeter.jtl
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
jmeter_jar=/usr/share/jmeter/bin/ApacheJMeter.jar
if [ ! -f "$jmeter_jar" ]; then
    echo "Debian's JMeter is not installed: apt-get install jmeter jmeter-http jmeter-java groovy" >&2
    exit 2
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/haven-jmeter.XXXXXX")
trap 'rm -rf "$work"' EXIT
javac -d "$work" -cp "$jmeter_jar" "$here/HavenJMeter.java"
sed -e '/<sentBytes>/d' \
    -e 's#<stringProp name="cacheKey">true</stringProp>#<stringProp name="cacheKey"></stringProp>#' \
    "$here/../haven.jmx" > "$work/haven-2.13.jmx"
log=${JMETER_LOG:-target/bench/jmeter.log}
mkdir -p "$(dirname "$log")"
java -Djmeter.home=/usr/share/jmeter -Duser.classpath=/usr/share/java/groovy-all.jar \
    -cp "$jmeter_jar:$work" HavenJMeter -n -t "$work/haven-2.13.jmx" -j "$log" "$@"
