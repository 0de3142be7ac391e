# Build: docker build -t switchback .
# Run:   docker run -v $PWD/switchback.json:/etc/switchback/switchback.json:ro \
#          -e Switchback__Listener__Bind=0.0.0.0:9092 -e Switchback__Admin__Bind=0.0.0.0:9190 \
#          -e Switchback__Listener__AdvertisedHost=<host clients reach> \
#          -p 9092:9092 -p 9093-9156:9093-9156 -p 9190:9190 switchback

FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
# Restore first so the package layer is reused while only sources change.
COPY global.json Directory.Build.props Directory.Packages.props .editorconfig ./
COPY src/Protocol.Generator/Protocol.Generator.csproj src/Protocol.Generator/
COPY src/Protocol/Protocol.csproj src/Protocol/
COPY src/Proxy/Proxy.csproj src/Proxy/
RUN dotnet restore src/Proxy/Proxy.csproj
COPY src/ src/
RUN dotnet publish src/Proxy -c Release -o /app --no-restore

FROM mcr.microsoft.com/dotnet/aspnet:10.0
WORKDIR /app
COPY --from=build /app ./
# Routes and the audit log live in StateDirectory; give the non-root user a writable one.
RUN mkdir -p /var/lib/switchback /etc/switchback && chown "$APP_UID" /var/lib/switchback
ENV Switchback__StateDirectory=/var/lib/switchback
USER $APP_UID
# 9092: bootstrap (Listener.Bind). 9190: admin API (Admin.Bind). Virtual brokers listen on
# Listener.BrokerPortStart.. (+ Listener.MaxBrokers); by default 9093-9156.
EXPOSE 9092 9190
EXPOSE 9093-9156
ENTRYPOINT ["dotnet", "switchback.dll", "run", "--config", "/etc/switchback/switchback.json"]
