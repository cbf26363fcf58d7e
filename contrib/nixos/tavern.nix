# Tavern on NixOS: `services.tavern`.
#
#   imports = [ ./contrib/nixos/tavern.nix ];
#   services.tavern = {
#     enable = true;
#     package = pkgs.callPackage ./tavern-package.nix { };   # your build of the binary (buildFeatures = [ "full" ])
#     domain = "games.example.org";
#     listen = "0.0.0.0:443";
#     settings.tls.mode = "acme";
#     environmentFile = "/run/secrets/tavern";   # TAVERN_* secrets, never in the store
#     openFirewall = true;
#   };
#
# The service is the one in contrib/systemd/tavern.service: its own user,
# state in /var/lib/tavern, sandboxed, and worlds that outlive a restart of
# Tavern (KillMode=process).
{ config, lib, pkgs, ... }:

let
  cfg = config.services.tavern;
  toml = pkgs.formats.toml { };
  configDir = pkgs.runCommand "tavern-config" { } ''
    mkdir -p $out
    cp ${toml.generate "tavern.toml" cfg.settings} $out/tavern.toml
  '';
  port = lib.toInt (lib.last (lib.splitString ":" cfg.listen));
in
{
  options.services.tavern = {
    enable = lib.mkEnableOption "Tavern, Foundry VTT worlds for a community";

    package = lib.mkOption {
      type = lib.types.package;
      description = "The package whose bin/tavern runs.";
    };

    domain = lib.mkOption {
      type = lib.types.str;
      default = "localhost";
      example = "games.example.org";
      description = "Worlds live at <slug>.<domain>; the bare domain serves the dashboard.";
    };

    listen = lib.mkOption {
      type = lib.types.str;
      default = "127.0.0.1:8080";
      example = "0.0.0.0:443";
      description = "The address of the one listener (dashboard, API and every world).";
    };

    settings = lib.mkOption {
      type = toml.type;
      default = { };
      example = { idle.timeout_minutes = 45; tls.mode = "acme"; };
      description = "tavern.toml, as an attribute set (see the README's Configuration). No secrets: the Nix store is world-readable.";
    };

    environmentFile = lib.mkOption {
      type = lib.types.nullOr lib.types.path;
      default = null;
      description = "A file of TAVERN_* variables for secrets (Ko-fi's token, Discord's bot token, the store's URL).";
    };

    dockerRuntime = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = "Let Tavern run worlds as Docker containers (it joins the docker group; the package needs the `docker` feature).";
    };

    openFirewall = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = "Open the listener's port (and 80 for HTTP-01 and redirects when it listens on 443).";
    };
  };

  config = lib.mkIf cfg.enable {
    users.users.tavern = {
      isSystemUser = true;
      group = "tavern";
      home = "/var/lib/tavern";
      extraGroups = lib.optional cfg.dockerRuntime "docker";
    };
    users.groups.tavern = { };

    networking.firewall.allowedTCPPorts =
      lib.mkIf cfg.openFirewall ([ port ] ++ lib.optional (port == 443) 80);

    systemd.services.tavern = {
      description = "Tavern: Foundry VTT worlds for a community";
      wantedBy = [ "multi-user.target" ];
      after = [ "network-online.target" ] ++ lib.optional cfg.dockerRuntime "docker.service";
      wants = [ "network-online.target" ];
      serviceConfig = {
        Type = "exec";
        User = "tavern";
        Group = "tavern";
        ExecStart = "${cfg.package}/bin/tavern serve --data-dir /var/lib/tavern --listen ${cfg.listen} --domain ${cfg.domain} --log-format json";
        WorkingDirectory = "${configDir}";
        EnvironmentFile = lib.mkIf (cfg.environmentFile != null) cfg.environmentFile;
        StateDirectory = "tavern";
        StateDirectoryMode = "0700";
        KillMode = "process";
        TimeoutStopSec = 30;
        Restart = "on-failure";
        RestartSec = 2;
        LimitNOFILE = 65536;
        AmbientCapabilities = [ "CAP_NET_BIND_SERVICE" ];
        CapabilityBoundingSet = [ "CAP_NET_BIND_SERVICE" ];
        SupplementaryGroups = lib.optional cfg.dockerRuntime "docker";
        NoNewPrivileges = true;
        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = true;
        PrivateDevices = true;
        ProtectClock = true;
        ProtectHostname = true;
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectKernelLogs = true;
        ProtectControlGroups = true;
        ProtectProc = "invisible";
        RestrictAddressFamilies = [ "AF_UNIX" "AF_INET" "AF_INET6" ];
        RestrictNamespaces = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        LockPersonality = true;
        RemoveIPC = true;
        UMask = "0077";
        SystemCallArchitectures = "native";
        SystemCallFilter = [ "@system-service" ];
      };
    };
  };
}
