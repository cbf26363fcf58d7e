# Tavern's image: the statically linked `tavern` binary on an empty base,
# with the CA roots for HTTPS, run as an unprivileged user. Its context is
# prepared by scripts/tavern-image.sh (the binary is built on the host:
# `RUSTFLAGS='-C target-feature=+crt-static' cargo build --profile dist
# --features full --target x86_64-unknown-linux-gnu`), so the build needs
# no base image to pull.
#
# The same image serves Tavern (`serve`) and each world's init container on
# Kubernetes and ECS (`foundry-config`), and the data agents; on ECS the
# init container copies libtavern_hostname.so for Foundry to preload.
FROM scratch
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY tavern /usr/local/bin/tavern
COPY libtavern_hostname.so /usr/local/lib/tavern/libtavern_hostname.so
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    TAVERN_SERVER_DATA_DIR=/var/lib/tavern
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/tavern"]
CMD ["serve", "--listen=0.0.0.0:8080"]
