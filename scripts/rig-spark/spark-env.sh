# The head node's login environment (read by `sh -l`): Java and Spark's configuration.
export SPARK_CONF_DIR=/etc/spark/conf
export SPARK_LOCAL_IP=127.0.0.1
if [ "$(id -un)" != nojava ]; then
    export JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64
    export PATH="$JAVA_HOME/bin:$PATH"
fi
